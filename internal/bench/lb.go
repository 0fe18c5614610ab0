package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/golang/groupcache/consistenthash"

	"github.com/girder-go/girder/lb"
)

func init() { register(lbRows) }

// lbRows measure one pick and its Done per policy with 10 and 1,000 backends. No library in
// this module balances load, so the rows have no peer.
func lbRows(*Env) []Row {
	var rows []Row
	for _, n := range []int{10, 1000} {
		for _, p := range lb.Policies() {
			rows = append(rows, Row{Package: "lb", Op: fmt.Sprintf("pick+done %v, %d backends", p, n), Girder: lbPick(p, n, nil, false)})
		}
	}
	// Options.UntrackedLeases: no pooled handle behind a lease (no leak reclaim, Done exactly once).
	for _, n := range []int{10, 1000} {
		for _, p := range []lb.Policy{lb.RoundRobin, lb.P2CLeastRequest, lb.P2CPeakEWMA} {
			rows = append(rows, Row{Package: "lb", Op: fmt.Sprintf("pick+done %v, %d backends, untracked leases", p, n), Girder: lbPick(p, n, nil, true)})
		}
	}
	// A placement from outside (here groupcache's ring, standing in for girder's shard ring)
	// instead of lb's own ring: the ring lookup plus lb's pick.
	rows = append(rows, Row{Package: "lb", Op: "pick+done consistent-hash, groupcache ring as Placement, 1000 backends",
		Girder: lbPick(lb.ConsistentHash, 1000, lbRing(1000).Get, false)})
	// Do's one attempt with the retry budget at its default (a clock read and a deposit per
	// request) and with the budget off.
	rows = append(rows,
		Row{Package: "lb", Op: "Do, success, p2c-peak-ewma, 10 backends, retry budget on (default)", Girder: lbDo(lb.RetryBudget{})},
		Row{Package: "lb", Op: "Do, success, p2c-peak-ewma, 10 backends, retry budget off", Girder: lbDo(lb.RetryBudget{Ratio: -1})})
	return rows
}

func lbDo(rb lb.RetryBudget) func(*testing.B) {
	return func(b *testing.B) {
		bs := make([]lb.Backend[int], 10)
		for i := range bs {
			bs[i] = lb.Backend[int]{Name: "backend-" + strconv.Itoa(i), Value: i}
		}
		bal, err := lb.New(lb.Options[int]{Policy: lb.P2CPeakEWMA, Backends: bs, RetryBudget: rb})
		if err != nil {
			b.Fatal(err)
		}
		defer bal.Close()
		ctx := context.Background()
		fn := func(context.Context, int) error { return nil }
		for b.Loop() {
			if err := bal.Do(ctx, fn); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func lbBalancer(p lb.Policy, n int, placement func(string) string, untracked bool) *lb.Balancer[int] {
	bs := make([]lb.Backend[int], n)
	for i := range bs {
		bs[i] = lb.Backend[int]{Name: "backend-" + strconv.Itoa(i), Value: i, Weight: 1 + i%3}
	}
	b, err := lb.New(lb.Options[int]{Policy: p, Backends: bs, Placement: placement, UntrackedLeases: untracked})
	if err != nil {
		panic(err)
	}
	return b
}

func lbPick(p lb.Policy, n int, placement func(string) string, untracked bool) func(*testing.B) {
	return func(b *testing.B) {
		bal := lbBalancer(p, n, placement, untracked)
		defer bal.Close()
		for b.Loop() {
			l, err := bal.PickKey("user-42")
			if err != nil {
				b.Fatal(err)
			}
			l.Done(nil, time.Millisecond)
		}
	}
}

func lbRing(n int) *consistenthash.Map {
	ring := consistenthash.New(160, nil)
	names := make([]string, n)
	for i := range names {
		names[i] = "backend-" + strconv.Itoa(i)
	}
	ring.Add(names...)
	return ring
}
