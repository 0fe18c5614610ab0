package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The overload simulation: a service of simWorkers workers, each call taking simService (±20 %),
// so its capacity is simWorkers/simService calls a second. Callers give up after simDeadline.
// The service does not notice a caller giving up: a call that has started runs to the end, as
// with most real dependencies. Load steps from 0.5× to 3× capacity and back, then the
// dependency slows down 5× for a while at 1× load, then recovers.
const (
	simWorkers  = 10
	simService  = 20 * time.Millisecond
	simDeadline = 10 * simService
	simCapacity = float64(simWorkers) / float64(simService) * float64(time.Second) // calls a second
	simBucket   = 500 * time.Millisecond
	// simRight is the right static limit: enough calls in flight to keep the workers busy, few
	// enough that they finish within the deadline while the dependency is 5× slower.
	simRight = simWorkers * 3 / 2
)

type simPhase struct {
	name string
	load float64 // offered load, × capacity
	slow float64 // service time multiplier
	dur  time.Duration
}

func simPhases(step time.Duration) []simPhase {
	return []simPhase{
		{"0.5×", 0.5, 1, step}, {"1×", 1, 1, step}, {"2×", 2, 1, step}, {"3×", 3, 1, step},
		{"2× again", 2, 1, step}, {"1× again", 1, 1, step}, {"0.5× again", 0.5, 1, step},
		{"1×, 5× slower", 1, 5, 2 * step}, {"1×, recovered", 1, 1, 2 * step},
	}
}

type simLimiter struct {
	name string
	opts *AdaptiveOptions // nil: no limit
}

func simLimiters() []simLimiter {
	static := func(n int) *AdaptiveOptions {
		return &AdaptiveOptions{InitialLimit: n, MinLimit: n, MaxLimit: n}
	}
	return []simLimiter{
		{"no limit", nil},
		{"static, right", static(simRight)},
		{"static, 2× too high", static(2 * simRight)},
		{"AIMD", &AdaptiveOptions{Algorithm: AIMD(AIMDOptions{Timeout: simDeadline * 3 / 4})}},
		{"Gradient2", &AdaptiveOptions{}},
	}
}

// simResult is one limiter's run: per phase, and per bucket of simBucket for recovery.
type simResult struct {
	goodput []float64 // calls completed within the deadline, a second
	p99     []time.Duration
	shed    []int
	buckets []int // good calls per bucket
	limits  []int // the limit at the start of each bucket
}

type simCall struct {
	phase   int
	arrive  time.Duration // since the start
	latency time.Duration // what the caller saw: up to simDeadline
	good    bool
	shed    bool
}

func runSim(t *testing.T, seed uint64, phases []simPhase, lim simLimiter) simResult {
	var res simResult
	synctest.Test(t, func(t *testing.T) {
		var a *Adaptive
		if lim.opts != nil {
			var err error
			if a, err = NewAdaptive(*lim.opts); err != nil {
				t.Fatal(err)
			}
		}
		rng := rand.New(rand.NewPCG(seed, 25))
		workers := make(chan struct{}, simWorkers)
		var slow atomic.Uint64 // current multiplier × 1000
		var mu sync.Mutex
		var calls []simCall
		var wg sync.WaitGroup
		begin := time.Now()
		call := func(phase int, jitter float64) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), simDeadline)
			defer cancel()
			start := time.Now()
			c := simCall{phase: phase, arrive: start.Sub(begin)}
			defer func() {
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
			}()
			done := noopOutcome
			if a != nil {
				d, err := a.Acquire(ctx)
				if err != nil {
					c.shed = true
					return
				}
				done = d
			}
			select {
			case workers <- struct{}{}:
			case <-ctx.Done():
				done(Dropped)
				c.latency = simDeadline
				return
			}
			time.Sleep(time.Duration(float64(simService) * jitter * float64(slow.Load()) / 1000))
			<-workers
			el := time.Since(start)
			if el > simDeadline {
				done(Dropped)
				c.latency = simDeadline
				return
			}
			done(Success)
			c.latency, c.good = el, true
		}
		for i, p := range phases {
			slow.Store(uint64(p.slow * 1000))
			end := time.Now().Add(p.dur)
			rate := p.load * simCapacity
			for {
				time.Sleep(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
				if !time.Now().Before(end) {
					break
				}
				if a != nil && int(time.Since(begin)/simBucket) >= len(res.limits) {
					res.limits = append(res.limits, a.Limit())
				}
				wg.Add(1)
				go call(i, 0.8+0.4*rng.Float64())
			}
		}
		wg.Wait()

		res.goodput = make([]float64, len(phases))
		res.p99 = make([]time.Duration, len(phases))
		res.shed = make([]int, len(phases))
		var total time.Duration
		for _, p := range phases {
			total += p.dur
		}
		res.buckets = make([]int, int(total/simBucket)+1)
		lat := make([][]time.Duration, len(phases))
		for _, c := range calls {
			if c.shed {
				res.shed[c.phase]++
				continue
			}
			lat[c.phase] = append(lat[c.phase], c.latency)
			if c.good {
				res.goodput[c.phase]++
				res.buckets[c.arrive/simBucket]++
			}
		}
		for i, p := range phases {
			res.goodput[i] /= p.dur.Seconds()
			if l := lat[i]; len(l) > 0 {
				slices.Sort(l)
				res.p99[i] = l[len(l)*99/100]
			}
		}
	})
	return res
}

// recovery is how long after the slowdown ends r's goodput per bucket stays at least 90 % of
// ref's for the rest of the run.
func recovery(phases []simPhase, r, ref simResult) time.Duration {
	var slowEnd time.Duration
	for _, p := range phases {
		slowEnd += p.dur
		if p.slow > 1 {
			break
		}
	}
	first := int(slowEnd / simBucket)
	last := len(r.buckets) - 2 // the final bucket is partial
	rec := first
	for b := first; b <= last; b++ {
		if float64(r.buckets[b]) < 0.9*float64(ref.buckets[b]) {
			rec = b + 1
		}
	}
	return time.Duration(rec-first) * simBucket
}

// TestAdaptiveSimulation checks, on the overload simulation, what AdaptiveOptions' docs promise:
// without a limit goodput collapses under overload; the adaptive limiter keeps goodput within
// 10 % of a static limit set right at every load step, and recovers within a few seconds after
// the dependency does. GIRDER_SOAK=<duration> makes each load step that long.
func TestAdaptiveSimulation(t *testing.T) {
	step := 2 * time.Second
	if s := os.Getenv("GIRDER_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("GIRDER_SOAK: %v", err)
		}
		step = d / 11
	}
	seed := simSeed(t)
	phases := simPhases(step)
	lims := simLimiters()
	results := simTable(t, seed, phases, lims)
	for i, r := range results[2:] {
		share, at := 2.0, ""
		for j, p := range phases {
			if s := r.goodput[j] / results[1].goodput[j]; s < share {
				share, at = s, p.name
			}
		}
		t.Logf("%s: lowest goodput %.0f %% of the right static limit's, at %s", lims[2+i].name, 100*share, at)
	}

	none, right := results[0], results[1]
	over := slices.IndexFunc(phases, func(p simPhase) bool { return p.load == 3 })
	if none.goodput[over] > 0.5*right.goodput[over] {
		t.Errorf("seed %d: no limit kept %.0f calls/s at 3× load, the right static limit %.0f: no collapse",
			seed, none.goodput[over], right.goodput[over])
	}
	// Both algorithms meet the target at every step, the slowdown included: AIMD with
	// its default back-off and a timeout below the callers' deadline, Gradient2 with nothing
	// set at all.
	for i, l := range lims[3:] {
		r := results[3+i]
		const share = 0.9
		for j, p := range phases {
			if p.slow > 1 && r.goodput[j] < 4*none.goodput[j] && none.goodput[j] > 0 {
				t.Errorf("seed %d: %s: goodput %.0f calls/s while slow, not far above no limit's %.0f",
					seed, l.name, r.goodput[j], none.goodput[j])
			}
			if r.goodput[j] < share*right.goodput[j] {
				t.Errorf("seed %d: %s: goodput %.0f calls/s at %s, below %.0f %% of the right static limit's %.0f",
					seed, l.name, r.goodput[j], p.name, 100*share, right.goodput[j])
			}
		}
		if rec := recovery(phases, r, right); rec > 3*time.Second {
			t.Errorf("seed %d: %s: took %v to recover after the slowdown", seed, l.name, rec)
		}
	}
}

// simSeed returns GIRDER_SEED, or a fresh seed; either way it logs how to replay it.
func simSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GIRDER_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("GIRDER_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with GIRDER_SEED=%d)", seed, seed)
	return seed
}

// simTable runs every limiter through phases and logs the table of goodput and p99.
func simTable(t *testing.T, seed uint64, phases []simPhase, lims []simLimiter) []simResult {
	results := make([]simResult, len(lims))
	for i, l := range lims {
		results[i] = runSim(t, seed, phases, l)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "capacity %.0f calls/s, deadline %v; goodput calls/s (p99)\n", simCapacity, simDeadline)
	fmt.Fprintf(&b, "%-16s", "load")
	for _, l := range lims {
		fmt.Fprintf(&b, " | %-21s", l.name)
	}
	b.WriteString("\n")
	for i, p := range phases {
		fmt.Fprintf(&b, "%-16s", p.name)
		for _, r := range results {
			fmt.Fprintf(&b, " | %5.0f (%-12v)", r.goodput[i], r.p99[i].Round(time.Millisecond))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%-16s", "recovery")
	for _, r := range results {
		fmt.Fprintf(&b, " | %-21v", recovery(phases, r, results[1]))
	}
	t.Log("\n" + b.String())
	for i, r := range results {
		t.Logf("%s limits per %v: %v", lims[i].name, simBucket, r.limits)
	}
	return results
}

// TestAdaptiveSimulationSlowAtPeak is the simulation's harder case, reported rather than held
// to the target: the dependency slows down 5× while the load is 3× capacity, so the
// adaptive limits meet the slowdown at their highest, learned under overload, and calls queued
// behind them time out until they come down. The right static limit, set for the slow days,
// pays nothing. The adaptive limiters must still do far better than no limit and than a static
// limit set too high, and recover within a few seconds.
func TestAdaptiveSimulationSlowAtPeak(t *testing.T) {
	step := 2 * time.Second
	seed := simSeed(t)
	phases := []simPhase{
		{"1×", 1, 1, step}, {"3×", 3, 1, step},
		{"3×, 5× slower", 3, 5, 2 * step}, {"1×, recovered", 1, 1, 2 * step},
	}
	lims := simLimiters()
	results := simTable(t, seed, phases, lims)
	const slow = 2
	none, right, high := results[0], results[1], results[2]
	for i, l := range lims[3:] {
		r := results[3+i]
		if r.goodput[slow] < 0.25*right.goodput[slow] || r.goodput[slow] < 4*max(none.goodput[slow], high.goodput[slow]) {
			t.Errorf("seed %d: %s: goodput %.0f calls/s slow at peak; right static %.0f, no limit %.0f, 2× too high %.0f",
				seed, l.name, r.goodput[slow], right.goodput[slow], none.goodput[slow], high.goodput[slow])
		}
		if rec := recovery(phases, r, right); rec > 3*time.Second {
			t.Errorf("seed %d: %s: took %v to recover after the slowdown", seed, l.name, rec)
		}
	}
}
