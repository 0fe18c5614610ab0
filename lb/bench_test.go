package lb

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPick measures one Pick and its Done per policy, with 10 and 1,000 backends.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 1000} {
		for _, p := range Policies() {
			b.Run(fmt.Sprintf("%v/%d", p, n), func(b *testing.B) {
				bal := benchBalancer(b, p, n, false)
				b.ReportAllocs()
				for b.Loop() {
					l, err := bal.PickKey("user-42")
					if err != nil {
						b.Fatal(err)
					}
					l.Done(nil, time.Millisecond)
				}
			})
		}
	}
}

// BenchmarkPickUntracked is BenchmarkPick with Options.UntrackedLeases.
func BenchmarkPickUntracked(b *testing.B) {
	for _, n := range []int{10, 1000} {
		for _, p := range []Policy{RoundRobin, P2CLeastRequest, P2CPeakEWMA} {
			b.Run(fmt.Sprintf("%v/%d", p, n), func(b *testing.B) {
				bal := benchBalancer(b, p, n, true)
				b.ReportAllocs()
				for b.Loop() {
					l, err := bal.Pick()
					if err != nil {
						b.Fatal(err)
					}
					l.Done(nil, time.Millisecond)
				}
			})
		}
	}
}

// BenchmarkPickParallel measures picks from every core at once.
func BenchmarkPickParallel(b *testing.B) {
	for _, p := range []Policy{RoundRobin, LeastConnections, P2CLeastRequest, P2CPeakEWMA} {
		b.Run(p.String(), func(b *testing.B) {
			bal := benchBalancer(b, p, 10, false)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l, err := bal.Pick()
					if err != nil {
						b.Fatal(err)
					}
					l.Done(nil, time.Millisecond)
				}
			})
		})
	}
}

func benchBalancer(b *testing.B, p Policy, n int, untracked bool) *Balancer[int] {
	bs := make([]Backend[int], n)
	for i := range bs {
		bs[i] = Backend[int]{Name: fmt.Sprint("backend-", i), Value: i, Weight: 1 + i%3}
	}
	bal, err := New(Options[int]{Policy: p, Backends: bs, UntrackedLeases: untracked})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bal.Close() })
	return bal
}
