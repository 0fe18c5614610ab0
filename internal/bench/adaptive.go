package main

import (
	"context"
	"testing"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/ratelimit"
)

func init() { register(adaptiveRows) }

// adaptiveRows measure the adaptive concurrency limiter's two-step Acquire + done, uncontended
// and in parallel, against the breaker's two-step Allow + done in the same run: the other
// girder primitive that wraps every call. The breaker is measured untimed (its default: no clock
// read, no allocation) and timed (a hook set, so it reads the clock twice, as the limiter must).
// No Go adaptive concurrency limiter is served by the module proxy
// (github.com/platinummonkey/go-concurrency-limits is not), so the rows have no outside peer.
func adaptiveRows(*Env) []Row {
	return []Row{
		{Package: "ratelimit", Op: "adaptive Acquire + done, Gradient2", Girder: adaptiveAcquire(ratelimit.Gradient2(ratelimit.Gradient2Options{}), false),
			Peer: "girder breaker Allow + done, untimed", PeerFn: adaptiveBreaker(false, false)},
		{Package: "ratelimit", Op: "adaptive Acquire + done, Gradient2", Girder: adaptiveAcquire(ratelimit.Gradient2(ratelimit.Gradient2Options{}), false),
			Peer: "girder breaker Allow + done, timed", PeerFn: adaptiveBreaker(true, false)},
		{Package: "ratelimit", Op: "adaptive Acquire + done, AIMD", Girder: adaptiveAcquire(ratelimit.AIMD(ratelimit.AIMDOptions{}), false),
			Peer: "girder breaker Allow + done, timed", PeerFn: adaptiveBreaker(true, false)},
		{Package: "ratelimit", Op: "adaptive Acquire + done, Gradient2, parallel", Girder: adaptiveAcquire(ratelimit.Gradient2(ratelimit.Gradient2Options{}), true),
			Peer: "girder breaker Allow + done, timed, parallel", PeerFn: adaptiveBreaker(true, true)},
	}
}

func adaptiveAcquire(alg ratelimit.LimitAlgorithm, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		// MinLimit high enough that the parallel goroutines are never shed.
		a, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{Algorithm: alg, MinLimit: 1000, MaxLimit: 10_000})
		if err != nil {
			panic(err)
		}
		ctx := context.Background()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					done, _ := a.Acquire(ctx)
					done(ratelimit.Success)
				}
			})
			return
		}
		for b.Loop() {
			done, _ := a.Acquire(ctx)
			done(ratelimit.Success)
		}
	}
}

func adaptiveBreaker(timed, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		var o breaker.Options
		if timed {
			o.Hooks.OnOutcome = func(context.Context, breaker.OutcomeInfo) {}
		}
		br, err := breaker.New(o)
		if err != nil {
			panic(err)
		}
		ctx := context.Background()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					done, _ := br.Allow(ctx)
					done(nil)
				}
			})
			return
		}
		for b.Loop() {
			done, _ := br.Allow(ctx)
			done(nil)
		}
	}
}
