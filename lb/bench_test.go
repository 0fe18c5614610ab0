package lb

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// BenchmarkHedge measures a hedged call whose first attempt answers before the hedge delay:
// the cost hedging adds to every call it could hedge (goroutine, channel, ctx), through DoCall
// and through NewProxy.
func BenchmarkHedge(b *testing.B) {
	b.Run("DoCall", func(b *testing.B) {
		bal, err := New(Options[int]{Backends: []Backend[int]{{Name: "a", Value: 1}, {Name: "b", Value: 2}},
			Hedge: Hedge{Delay: time.Hour}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { bal.Close() })
		fn := func(context.Context, int) error { return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := bal.DoCall(context.Background(), Call{Hedge: true}, fn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Proxy", func(b *testing.B) {
		bal, err := New(Options[*url.URL]{Backends: []Backend[*url.URL]{
			{Name: "a", Value: &url.URL{Scheme: "http", Host: "a.invalid"}},
			{Name: "b", Value: &url.URL{Scheme: "http", Host: "b.invalid"}}},
			Hedge: Hedge{Delay: time.Hour}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { bal.Close() })
		p, err := NewProxy(bal, ProxyOptions[*url.URL]{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})})
		if err != nil {
			b.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		b.ReportAllocs()
		for b.Loop() {
			p.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
}
