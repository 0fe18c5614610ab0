package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/lb"
)

// traffic is the demo's own client and observer: an optional load generator that sends
// cfg.load GET requests per second through the proxy, and a periodic log line of how the
// requests spread over the backends, so that killing a backend shows the traffic moving.
type traffic struct {
	wg       sync.WaitGroup
	ok, fail atomic.Int64 // load generator responses: 2xx-4xx, and 5xx or errors
}

// startTraffic starts what cfg asks for; Wait returns once ctx is done and all of it stopped.
func startTraffic(ctx context.Context, cfg config, base string, p *proxy) *traffic {
	t := &traffic{}
	if cfg.load > 0 {
		t.wg.Go(func() { t.generate(ctx, cfg, base, p.policy == lb.ConsistentHash) })
	}
	if cfg.report > 0 {
		t.wg.Go(func() { t.reportLoop(ctx, cfg.report, p, cfg.logger) })
	}
	return t
}

func (t *traffic) Wait() { t.wg.Wait() }

// generate sends GET /demo/<n> at the configured rate, at most 32 at a time; with the sticky
// policy each request carries one of a hundred session keys in the sticky header.
func (t *traffic) generate(ctx context.Context, cfg config, base string, sticky bool) {
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	sem := make(chan struct{}, 32)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	tick := time.NewTicker(time.Second / time.Duration(cfg.load))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			t.fail.Add(1) // the proxy is not keeping up; count it rather than queue forever
			continue
		}
		inflight.Go(func() {
			defer func() { <-sem }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/demo/"+strconv.Itoa(n), nil)
			if err != nil {
				t.fail.Add(1)
				return
			}
			if sticky {
				req.Header.Set(cfg.stickyHeader, "user-"+strconv.Itoa(n%100))
			}
			resp, err := client.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					t.fail.Add(1)
				}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.fail.Add(1)
			} else {
				t.ok.Add(1)
			}
		})
	}
}

// reportLoop logs, every interval in which the proxy sent anything, how many requests each
// backend served and why a backend is out of rotation, e.g.
//
//	traffic window=2s backend-1=20 backend-2="0 (down, breaker open)" backend-3=20 load_ok=40 load_failed=0
func (t *traffic) reportLoop(ctx context.Context, every time.Duration, p *proxy, log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastSent := make([]int64, len(p.upstreams))
	lastServed := make([]int64, len(p.upstreams))
	var lastOK, lastFail int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		attrs := []any{"window", every}
		moved := false
		healthy := map[string]bool{}
		for _, s := range p.balancer.Stats() {
			healthy[s.Name] = s.Healthy
		}
		for i, u := range p.upstreams {
			sent, served := u.attempts.Load(), u.served.Load()
			moved = moved || sent != lastSent[i]
			v := strconv.FormatInt(served-lastServed[i], 10)
			lastSent[i], lastServed[i] = sent, served
			switch st := u.breaker.State(); {
			case !healthy[u.name] && st != breaker.Closed:
				v += fmt.Sprintf(" (down, breaker %s)", st)
			case !healthy[u.name]:
				v += " (down)"
			case st != breaker.Closed:
				v += fmt.Sprintf(" (breaker %s)", st)
			}
			attrs = append(attrs, u.name, v)
		}
		ok, fail := t.ok.Load(), t.fail.Load()
		attrs = append(attrs, "load_ok", ok-lastOK, "load_failed", fail-lastFail)
		lastOK, lastFail = ok, fail
		if moved {
			log.Info("traffic", attrs...)
		}
	}
}
