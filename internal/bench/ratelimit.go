package main

import (
	"testing"

	"github.com/girder-go/girder/ratelimit"
	uberrl "go.uber.org/ratelimit"
	xrate "golang.org/x/time/rate"
)

func init() { register(ratelimitRows) }

// ratelimitHighRate is high enough that the benchmarks measure the admit path, not denials.
const ratelimitHighRate = 1e8

func ratelimitRows(env *Env) []Row {
	return []Row{
		{
			Package: "ratelimit", Op: "local Allow",
			Girder: ratelimitLocalAllow,
			Peer:   "x/time/rate v0.16.0", PeerFn: ratelimitXAllow,
		},
		{
			Package: "ratelimit", Op: "local Allow, denied",
			Girder: ratelimitLocalDenied,
			Peer:   "x/time/rate v0.16.0", PeerFn: ratelimitXDenied,
		},
		{
			Package: "ratelimit", Op: "local Take (uber: blocking pacer, unlimited rate)",
			Girder: ratelimitLocalAllow,
			Peer:   "go.uber.org/ratelimit v0.3.1", PeerFn: ratelimitUberTake,
		},
		{
			Package: "ratelimit", Op: "parallel Allow",
			Girder: ratelimitParallelAllow,
			Peer:   "x/time/rate v0.16.0", PeerFn: ratelimitXParallel,
		},
	}
}

func ratelimitLocalAllow(b *testing.B) {
	l, err := ratelimit.New(ratelimit.Limit{Rate: ratelimitHighRate, Burst: 1000})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		l.Allow()
	}
}

func ratelimitXAllow(b *testing.B) {
	l := xrate.NewLimiter(ratelimitHighRate, 1000)
	for b.Loop() {
		l.Allow()
	}
}

func ratelimitLocalDenied(b *testing.B) {
	l, err := ratelimit.New(ratelimit.Limit{Rate: 1, Burst: 1})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		l.Allow()
	}
}

func ratelimitXDenied(b *testing.B) {
	l := xrate.NewLimiter(1, 1)
	for b.Loop() {
		l.Allow()
	}
}

func ratelimitUberTake(b *testing.B) {
	l := uberrl.NewUnlimited()
	for b.Loop() {
		l.Take()
	}
}

func ratelimitParallelAllow(b *testing.B) {
	l, err := ratelimit.New(ratelimit.Limit{Rate: ratelimitHighRate, Burst: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}

func ratelimitXParallel(b *testing.B) {
	l := xrate.NewLimiter(ratelimitHighRate, 1000)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}
