package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/girder-go/girder/breaker"
)

func init() { register(breakerRows) }

var errBreakerBench = errors.New("bench: failure")

func breakerOK(context.Context) (int, error) { return 1, nil }
func breakerPeerOK() (int, error)            { return 1, nil }

// breakerGirder returns a girder breaker, closed or forced open.
func breakerGirder(open bool) *breaker.Breaker {
	b, err := breaker.New(breaker.Options{Name: "bench", OpenBackoff: breaker.Backoff{Initial: time.Hour}})
	if err != nil {
		panic(err)
	}
	if open {
		b.ForceOpen()
	}
	return b
}

// breakerGobreaker returns a gobreaker, closed or tripped for an hour.
func breakerGobreaker(open bool) *gobreaker.CircuitBreaker[int] {
	cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
		Name: "bench", Timeout: time.Hour,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 },
	})
	if open {
		cb.Execute(func() (int, error) { return 0, errBreakerBench })
	}
	return cb
}

// breakerFailsafe returns a failsafe-go executor with a breaker, closed or open.
func breakerFailsafe(open bool) failsafe.Executor[int] {
	cb := fscb.NewBuilder[int]().WithFailureThreshold(5).WithDelay(time.Hour).Build()
	if open {
		cb.Open()
	}
	return failsafe.With[int](cb)
}

func breakerDo(open bool) func(*testing.B) {
	return func(b *testing.B) {
		br, ctx := breakerGirder(open), context.Background()
		for b.Loop() {
			breaker.Do(ctx, br, breakerOK)
		}
	}
}

func breakerGobreakerExecute(open bool) func(*testing.B) {
	return func(b *testing.B) {
		cb := breakerGobreaker(open)
		for b.Loop() {
			cb.Execute(breakerPeerOK)
		}
	}
}

func breakerFailsafeGet(open bool) func(*testing.B) {
	return func(b *testing.B) {
		ex := breakerFailsafe(open)
		for b.Loop() {
			ex.Get(breakerPeerOK)
		}
	}
}

func breakerRows(*Env) []Row {
	return []Row{
		{Package: "breaker", Op: "closed Do, success", Girder: breakerDo(false),
			Peer: "gobreaker v2.4.0 Execute", PeerFn: breakerGobreakerExecute(false)},
		{Package: "breaker", Op: "closed Do, success", Girder: breakerDo(false),
			Peer: "failsafe-go v0.9.8 Get", PeerFn: breakerFailsafeGet(false)},
		{Package: "breaker", Op: "open, rejection", Girder: breakerDo(true),
			Peer: "gobreaker v2.4.0 Execute", PeerFn: breakerGobreakerExecute(true)},
		{Package: "breaker", Op: "open, rejection", Girder: breakerDo(true),
			Peer: "failsafe-go v0.9.8 Get", PeerFn: breakerFailsafeGet(true)},
		{Package: "breaker", Op: "two-step Allow + done",
			Girder: func(b *testing.B) {
				br, ctx := breakerGirder(false), context.Background()
				for b.Loop() {
					done, _ := br.Allow(ctx)
					done(nil)
				}
			},
			Peer: "gobreaker v2.4.0 TwoStep",
			PeerFn: func(b *testing.B) {
				cb := gobreaker.NewTwoStepCircuitBreaker[int](gobreaker.Settings{Name: "bench"})
				for b.Loop() {
					done, _ := cb.Allow()
					done(nil)
				}
			}},
		{Package: "breaker", Op: "closed Do, parallel",
			Girder: func(b *testing.B) {
				br, ctx := breakerGirder(false), context.Background()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						breaker.Do(ctx, br, breakerOK)
					}
				})
			},
			Peer: "gobreaker v2.4.0 Execute",
			PeerFn: func(b *testing.B) {
				cb := breakerGobreaker(false)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						cb.Execute(breakerPeerOK)
					}
				})
			}},
	}
}
