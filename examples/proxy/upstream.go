package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/lb"
	"github.com/girder-go/girder/tracing"
)

// upstream is one backend as the proxy sees it: where it is, the circuit breaker in front of it
// and what it has served. It is the value type of the balancer (lb.Balancer[*upstream]).
type upstream struct {
	name    string
	url     *url.URL
	breaker *breaker.Breaker
	rt      http.RoundTripper // breaker.Transport over the shared connection pool

	attempts atomic.Int64 // requests sent to it, retries included
	served   atomic.Int64 // answered with a status below 500
	failed   atomic.Int64 // refused, broken, rejected by the breaker, or 5xx
}

// newUpstream puts a breaker in front of one backend. The breaker trips after three failures
// in a row or a 50 % failure rate over its last 20 calls, stays open for cfg.breakerOpen
// (doubling while probes keep failing), then lets one probe request through.
func newUpstream(t target, cfg config, base http.RoundTripper) (*upstream, error) {
	br, err := breaker.New(breaker.Options{
		Name:                t.name,
		WindowSize:          20,
		MinCalls:            10,
		ConsecutiveFailures: 3,
		OpenBackoff:         breaker.Backoff{Initial: cfg.breakerOpen, Max: 8 * cfg.breakerOpen, Jitter: 0.1},
		Hooks:               cfg.metrics.breakerHooks(t.name),
		Logger:              cfg.logger, // logs as breaker=<name>
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: breaker for %s: %w", t.name, err)
	}
	return &upstream{name: t.name, url: t.url, breaker: br,
		rt: &breaker.Transport{Breaker: br, Base: base}}, nil
}

// available is the backend's lb.Availability check: lb skips a backend whose breaker is open,
// so the breaker takes it out of rotation at once instead of failing picks one by one. A
// half-open breaker counts as available: the next pick is its probe (and, once the probe slot is
// taken, further picks get ErrOpen and move on to another backend).
//
// breaker.Breaker has no Available method of its own, hence this adapter.
func (u *upstream) available() bool { return u.breaker.State() != breaker.Open }

// upstreamTransport is the proxy's RoundTripper below lb: lb names the backend it picked for
// the attempt in the request's context, and the request goes through that backend's breaker.
type upstreamTransport struct{}

func (upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	u, _, err := lb.BackendFromContext[*upstream](req.Context())
	if err != nil { // only lb's proxy sends requests here
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("proxy: request to %s: %w", req.URL.Host, err)
	}
	u.attempts.Add(1)
	// Name the backend on the attempt's client span (when tracing is on), so a retried
	// request shows which backends it tried.
	tracing.SpanFromContext(req.Context()).SetAttributes(tracing.String("lb.backend", u.name))
	resp, err := u.rt.RoundTrip(req)
	if err != nil || resp.StatusCode >= 500 {
		u.failed.Add(1)
	} else {
		u.served.Add(1)
	}
	return resp, err
}

// newBaseTransport is the connection pool shared by every backend. Short dial and header
// timeouts make a dead or stuck backend an error the proxy can retry elsewhere, rather than a
// hung client.
func newBaseTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // a reverse proxy talks to its backends directly
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// prober is the active health check: GET healthPath on the backend, directly (not through the
// breaker, so a backend can be seen to recover while its breaker is still open). Any 2xx passes.
func prober(client *http.Client, healthPath string) lb.Prober[*upstream] {
	return lb.ProberFunc[*upstream](func(ctx context.Context, u *upstream) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.url.JoinPath(healthPath).String(), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("health check: status %d", resp.StatusCode)
		}
		return nil
	})
}
