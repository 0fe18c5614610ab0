package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/lb"
	"github.com/girder-go/girder/ratelimit"
)

func init() {
	register(chapter{
		name:  "adaptive",
		title: "an adaptive concurrency limit sheds what a slow dependency cannot serve; a retry budget keeps retries from multiplying an outage",
		run:   tourAdaptive,
	})
}

func tourAdaptive(ctx context.Context, w io.Writer) error {
	if err := tourAdaptiveSlowdown(ctx, w); err != nil {
		return err
	}
	return tourAdaptiveRetryBudget(ctx, w)
}

// The dependency of the slowdown: 4 workers, a call takes 2 ms, then 10× as long; callers give
// up after 60 ms. 32 callers call in a loop; a shed caller waits 5 ms before calling again.
const (
	tourWorkers  = 4
	tourService  = 2 * time.Millisecond
	tourSlow     = 10
	tourDeadline = 60 * time.Millisecond
	tourCallers  = 32
	tourPhase    = 400 * time.Millisecond // normal, then slow for twice as long
)

// tourAdaptiveRun is one run of the slowdown: its good calls, shed calls and the limit, per phase.
type tourAdaptiveRun struct {
	good, shed [2]int
	limit      [2]int // the limit at the end of each phase
}

// tourAdaptiveSlowdown runs the same callers against the same dependency without a limit and
// behind an Adaptive, and shows that when the dependency slows down every call fails without
// a limit, while the limiter sheds the calls that would have queued and keeps the rest in time.
func tourAdaptiveSlowdown(ctx context.Context, w io.Writer) error {
	fmt.Fprintf(w, "a dependency of %d workers at %v a call, then %d× slower; %d callers, deadline %v:\n",
		tourWorkers, tourService, tourSlow, tourCallers, tourDeadline)
	none, err := tourAdaptiveOnce(ctx, nil)
	if err != nil {
		return err
	}
	a, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{Name: "dependency"}) // Gradient2, nothing tuned
	if err != nil {
		return err
	}
	adaptive, err := tourAdaptiveOnce(ctx, a)
	if err != nil {
		return err
	}
	for i, phase := range []string{"normal", fmt.Sprintf("%d× slower", tourSlow)} {
		fmt.Fprintf(w, "  %-10s  no limit: %4d in time         adaptive: %4d in time, %4d shed, limit %d\n",
			phase, none.good[i], adaptive.good[i], adaptive.shed[i], adaptive.limit[i])
	}
	fmt.Fprintln(w, "  (without a limit every caller queues for the slow workers and gives up; the limiter lets in")
	fmt.Fprintln(w, "   what the workers can serve within the deadline and answers the rest at once)")
	return nil
}

// tourAdaptiveOnce runs the callers for a normal phase and a slow one, through a when not nil.
func tourAdaptiveOnce(ctx context.Context, a *ratelimit.Adaptive) (tourAdaptiveRun, error) {
	var run tourAdaptiveRun
	var mu sync.Mutex
	var phase, slow atomic.Int32
	slow.Store(1)
	workers := make(chan struct{}, tourWorkers)
	call := func() (good, shed bool) {
		cctx, cancel := context.WithTimeout(ctx, tourDeadline)
		defer cancel()
		done := func(ratelimit.Outcome) {}
		if a != nil {
			d, err := a.Acquire(cctx)
			if err != nil {
				return false, errors.Is(err, ratelimit.ErrLimitExceeded)
			}
			done = d
		}
		select {
		case workers <- struct{}{}:
		case <-cctx.Done():
			done(ratelimit.Dropped)
			return false, false
		}
		time.Sleep(tourService * time.Duration(slow.Load()))
		<-workers
		if cctx.Err() != nil {
			done(ratelimit.Dropped)
			return false, false
		}
		done(ratelimit.Success)
		return true, false
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range tourCallers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := phase.Load()
				good, shed := call()
				mu.Lock()
				if good {
					run.good[p]++
				}
				if shed {
					run.shed[p]++
				}
				mu.Unlock()
				if shed {
					time.Sleep(5 * time.Millisecond) // as a client honouring Retry-After would
				}
			}
		})
	}
	time.Sleep(tourPhase)
	run.limit[0] = a.Limit()
	phase.Store(1)
	slow.Store(tourSlow)
	time.Sleep(2 * tourPhase)
	run.limit[1] = a.Limit()
	close(stop)
	wg.Wait()
	return run, ctx.Err()
}

// tourAdaptiveRetryBudget sends 1,000 requests, each allowed 3 attempts, through balancers of
// three backends while one of them, then all of them, fail every request, with plain retries and
// with the default retry budget, and counts the attempts the backends saw.
func tourAdaptiveRetryBudget(ctx context.Context, w io.Writer) error {
	fmt.Fprintln(w, "\n1,000 requests, 3 attempts each, over backends a, b and c; attempts the backends saw per request:")
	errDown := errors.New("backend down")
	for _, failing := range []string{"a", "abc"} {
		var attempts [2]int64
		var stats lb.RetryStats
		for i, budget := range []lb.RetryBudget{{Ratio: -1}, {}} {
			b, err := lb.New(lb.Options[string]{
				Policy:      lb.RoundRobin,
				Backends:    []lb.Backend[string]{{Name: "a", Value: "a"}, {Name: "b", Value: "b"}, {Name: "c", Value: "c"}},
				Passive:     lb.Passive{MaxFails: -1}, // no ejection: the retries alone meet the failures
				RetryBudget: budget,
			})
			if err != nil {
				return err
			}
			for range 1000 {
				_ = b.DoCall(ctx, lb.Call{Attempts: 3}, func(_ context.Context, backend string) error {
					attempts[i]++
					for _, f := range failing {
						if string(f) == backend {
							return errDown
						}
					}
					return nil
				})
			}
			stats = b.RetryStats()
			b.Close()
		}
		what := "a fails"
		if failing == "abc" {
			what = "all fail"
		}
		fmt.Fprintf(w, "  %-9s plain retries %.2f   retry budget %.2f (%d retries sent, %d refused)\n",
			what, float64(attempts[0])/1000, float64(attempts[1])/1000, stats.RetriesAttempted, stats.RetriesBudgetExhausted)
	}
	fmt.Fprintln(w, "  (the default budget allows retries of 20 % of the requests plus 10 a second over 10 s: enough")
	fmt.Fprintln(w, "   to ride out one bad backend, and an outage adds a fraction to the load rather than tripling it)")
	return nil
}
