package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/girder-go/girder/lb"
)

func init() {
	register(chapter{
		name:  "lb",
		title: "a load balancer spreads requests, steers around slow backends and retries on a live one",
		run:   tourLB,
	})
}

func tourLB(ctx context.Context, w io.Writer) error {
	if err := tourLBOrder(w); err != nil {
		return err
	}
	if err := tourLBSlowBackend(w); err != nil {
		return err
	}
	return tourLBProxy(ctx, w)
}

// tourLBOrder shows nginx's smooth weighted round robin: no burst of the heavy backend.
func tourLBOrder(w io.Writer) error {
	b, err := lb.New(lb.Options[string]{Policy: lb.WeightedRoundRobin, Backends: []lb.Backend[string]{
		{Name: "a", Weight: 5}, {Name: "b", Weight: 1}, {Name: "c", Weight: 1},
	}})
	if err != nil {
		return err
	}
	defer b.Close()
	var order []string
	for range 7 {
		l, err := b.Pick()
		if err != nil {
			return err
		}
		order = append(order, l.Name())
		l.Done(nil, 0)
	}
	fmt.Fprintf(w, "smooth weighted round robin, weights a=5 b=1 c=1: %s\n", strings.Join(order, " "))
	return nil
}

// tourLBSlowBackend sends 3,000 requests to three backends, one of them ten times slower, and
// shows where each policy sent them.
func tourLBSlowBackend(w io.Writer) error {
	latency := map[string]time.Duration{"fast-1": 5 * time.Millisecond, "fast-2": 5 * time.Millisecond, "slow": 50 * time.Millisecond}
	fmt.Fprintln(w, "\nthree backends, \"slow\" answers in 50 ms, the others in 5 ms; share of 3,000 requests:")
	for _, p := range []lb.Policy{lb.RoundRobin, lb.P2CLeastRequest, lb.P2CPeakEWMA} {
		b, err := lb.New(lb.Options[string]{Policy: p, Seed: 1, Backends: []lb.Backend[string]{
			{Name: "fast-1"}, {Name: "fast-2"}, {Name: "slow"},
		}})
		if err != nil {
			return err
		}
		counts := map[string]int{}
		for range 3000 {
			l, err := b.Pick()
			if err != nil {
				b.Close()
				return err
			}
			counts[l.Name()]++
			l.Done(nil, latency[l.Name()]) // report what the request took
		}
		b.Close()
		fmt.Fprintf(w, "  %-18s fast-1 %4.1f%%  fast-2 %4.1f%%  slow %4.1f%%\n", p,
			float64(counts["fast-1"])/30, float64(counts["fast-2"])/30, float64(counts["slow"])/30)
	}
	fmt.Fprintln(w, "  (sequential requests never overlap, so least-request cannot tell the slow one apart; peak EWMA can)")
	return nil
}

// tourLBProxy puts two HTTP backends behind the reverse-proxy helper, kills one, and shows
// that idempotent requests still succeed while passive health takes the dead one out.
func tourLBProxy(ctx context.Context, out io.Writer) error {
	w := &tourLBWriter{w: out} // the health hook writes from the proxy's goroutine
	var urls []*url.URL
	var servers []*httptest.Server
	for _, name := range []string{"web-1", "web-2"} {
		s := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprint(rw, name)
		}))
		defer s.Close()
		u, err := url.Parse(s.URL)
		if err != nil {
			return err
		}
		servers, urls = append(servers, s), append(urls, u)
	}
	b, err := lb.New(lb.Options[*url.URL]{
		Backends: []lb.Backend[*url.URL]{{Name: "web-1", Value: urls[0]}, {Name: "web-2", Value: urls[1]}},
		Passive:  lb.Passive{MaxFails: 2, EjectFor: time.Minute},
		Hooks: lb.Hooks{OnHealthChange: func(c lb.HealthChangeInfo) {
			fmt.Fprintf(w, "  health: %s healthy=%v (%s)\n", c.Backend, c.Healthy, c.Reason)
		}},
	})
	if err != nil {
		return err
	}
	defer b.Close()
	proxy, err := lb.NewProxy(b, lb.ProxyOptions[*url.URL]{})
	if err != nil {
		return err
	}
	front := httptest.NewServer(proxy)
	defer front.Close()

	get := func() (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/", nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, body), err
	}
	fmt.Fprintln(w, "\nreverse proxy over web-1 and web-2:")
	for i := range 2 {
		got, err := get()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  GET #%d → %s\n", i+1, got)
	}
	servers[0].Close()
	fmt.Fprintln(w, "  web-1 stops accepting connections")
	for i := range 4 {
		got, err := get()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(got, "200") {
			return fmt.Errorf("GET after web-1 died: %s", got)
		}
		fmt.Fprintf(w, "  GET #%d → %s\n", i+3, got)
	}
	fmt.Fprintln(w, "Every GET succeeded: a refused attempt is retried on the other backend, and after two")
	fmt.Fprintln(w, "failures web-1 is ejected so later requests do not even try it.")
	for _, s := range b.Stats() {
		fmt.Fprintf(w, "  stats: %s healthy=%v ejected=%v probe_down=%v available=%v\n",
			s.Name, s.Healthy, s.Ejected, s.ProbeDown, s.Available)
	}
	fmt.Fprintln(w, "Stats says why a backend is out: ejected by passive health, probes failing, or its")
	fmt.Fprintln(w, "availability check (a circuit breaker) saying no. A PUT with a body is retried too: the")
	fmt.Fprintln(w, "proxy keeps bodies up to ProxyOptions.MaxRetryBodyBytes (64 KiB) to send them again.")
	return nil
}

// tourLBWriter serialises writes from the chapter and from the balancer's hook.
type tourLBWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *tourLBWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.w.Write(p)
}
