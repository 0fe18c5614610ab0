package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
	"github.com/girder-go/girder/lb"
	"github.com/girder-go/girder/lb/lbprom"
)

func init() { register(metricsRows) }

// metricsRows measure what the Prometheus hooks add to the hot path: each row runs the same
// operation with the hooks of breakerprom or lbprom (Girder) and without any hook (Peer).
// Counters and gauges read Stats at scrape time and add nothing to these paths.
func metricsRows(*Env) []Row {
	const without = "girder without hooks"
	var rows []Row
	rows = append(rows,
		Row{Package: "breakerprom", Op: "closed Do, success, breakerprom hooks", Girder: breakerDoHooks(breakerPromHooks, false),
			Peer: without, PeerFn: breakerDo(false)},
		Row{Package: "breakerprom", Op: "closed Do, success, an empty OnOutcome (its clock reads alone)",
			Girder: breakerDoHooks(func() breaker.Hooks {
				return breaker.Hooks{OnOutcome: func(context.Context, breaker.OutcomeInfo) {}}
			}, false),
			Peer: without, PeerFn: breakerDo(false)},
		Row{Package: "breakerprom", Op: "closed Do, parallel, breakerprom hooks", Girder: breakerDoHooks(breakerPromHooks, true),
			Peer: without, PeerFn: breakerDoHooks(func() breaker.Hooks { return breaker.Hooks{} }, true)},
	)
	for _, p := range []lb.Policy{lb.RoundRobin, lb.P2CPeakEWMA} {
		rows = append(rows, Row{Package: "lbprom", Op: "pick+done " + p.String() + ", 10 backends, lbprom hooks",
			Girder: lbPickHooks(p, true), Peer: without, PeerFn: lbPickHooks(p, false)})
	}
	return rows
}

func breakerPromHooks() breaker.Hooks {
	c, err := breakerprom.New(breakerprom.Options{})
	if err != nil {
		panic(err)
	}
	return c.Hooks("bench")
}

func breakerDoHooks(hooks func() breaker.Hooks, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		br, err := breaker.New(breaker.Options{Name: "bench", Hooks: hooks()})
		if err != nil {
			panic(err)
		}
		ctx := context.Background()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					breaker.Do(ctx, br, breakerOK)
				}
			})
			return
		}
		for b.Loop() {
			breaker.Do(ctx, br, breakerOK)
		}
	}
}

func lbPickHooks(p lb.Policy, hooks bool) func(*testing.B) {
	return func(b *testing.B) {
		bs := make([]lb.Backend[int], 10)
		for i := range bs {
			bs[i] = lb.Backend[int]{Name: "backend-" + strconv.Itoa(i), Value: i, Weight: 1 + i%3}
		}
		opts := lb.Options[int]{Policy: p, Backends: bs}
		if hooks {
			c, err := lbprom.New(lbprom.Options{})
			if err != nil {
				panic(err)
			}
			opts.Hooks = c.Hooks("bench")
		}
		bal, err := lb.New(opts)
		if err != nil {
			panic(err)
		}
		defer bal.Close()
		for b.Loop() {
			l, err := bal.Pick()
			if err != nil {
				b.Fatal(err)
			}
			l.Done(nil, time.Millisecond)
		}
	}
}
