package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/lb"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/shard"
	"github.com/girder-go/girder/tracing"
)

// proxy is the composition: a balancer over upstreams, each with its breaker, behind lb's
// reverse proxy.
type proxy struct {
	policy    lb.Policy
	balancer  *lb.Balancer[*upstream]
	upstreams []*upstream // in the order of the targets
	handler   *httputil.ReverseProxy
	front     http.Handler        // handler behind the adaptive limit (overload.go)
	adaptive  *ratelimit.Adaptive // nil when -adaptive-max is negative
	base      *http.Transport
	logger    *slog.Logger
}

// parsePolicy accepts lb's policy names and "sticky" for consistent hashing.
func parsePolicy(name string) (lb.Policy, error) {
	if name == "sticky" {
		return lb.ConsistentHash, nil
	}
	var names []string
	for _, p := range lb.Policies() {
		if p.String() == name {
			return p, nil
		}
		names = append(names, p.String())
	}
	return 0, fmt.Errorf("proxy: unknown -policy %q; want sticky or one of %s", name, strings.Join(names, ", "))
}

// newProxy wires the girder packages together.
func newProxy(cfg config, targets []target, tracer *tracing.Tracer) (*proxy, error) {
	policy, err := parsePolicy(cfg.policy)
	if err != nil {
		return nil, err
	}
	p := &proxy{policy: policy, base: newBaseTransport(), logger: cfg.logger}

	// One breaker per backend (breaker), plugged into lb as the backend's availability check.
	backends := make([]lb.Backend[*upstream], 0, len(targets))
	for _, t := range targets {
		u, err := newUpstream(t, cfg, p.base)
		if err != nil {
			return nil, err
		}
		p.upstreams = append(p.upstreams, u)
		backends = append(backends, lb.Backend[*upstream]{Name: u.name, Value: u, Check: lb.AvailabilityFunc(u.available)})
	}

	// Sticky sessions: a consistent-hash ring over the backends' names (shard) is lb's
	// placement. lb does not import shard; any func(key) name would do. The ring keeps every
	// backend, dead or alive: when a key's owner is out of rotation lb places the key on a
	// survivor, and when the owner comes back the key returns to it, while keys owned by the
	// survivors never move.
	var placement func(string) string
	if policy == lb.ConsistentHash {
		ring, err := shard.NewRing[string](shard.RingOptions[string]{})
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			if err := ring.Add(t.name); err != nil {
				return nil, err
			}
		}
		placement = func(key string) string {
			name, err := ring.Locate(key)
			if err != nil {
				return "" // no nodes: lb falls back to its own hashing
			}
			return name
		}
	}

	log := cfg.logger
	p.balancer, err = lb.New(lb.Options[*upstream]{
		Policy:    policy,
		Backends:  backends,
		Placement: placement,
		// Passive health: five failed attempts within 10 s take a backend out for ejectFor. It
		// catches a backend that fails now and then; a run of failures trips the backend's
		// breaker first (three in a row).
		Passive: lb.Passive{MaxFails: 5, Window: 10 * time.Second, EjectFor: cfg.ejectFor},
		// Active health: two failed probes in a row take a backend out, two passed bring it
		// back. A dead backend refuses the probe at once; the generous timeout is for a busy
		// machine, where a probe that merely waited for a CPU must not take every backend out
		// at the same time (lb would then be in panic mode, sending traffic to all of them).
		Active: lb.Active[*upstream]{
			Probe:     prober(&http.Client{Transport: p.base}, cfg.healthPath),
			Interval:  cfg.probeEvery,
			Timeout:   cfg.probeTimeout,
			FailAfter: 2,
			PassAfter: 2,
		},
		SlowStart: cfg.slowStart,
		// Retries of all requests together stay within a budget (lb's default: 20 % of the
		// requests plus 10 per second), so a failing backend cannot multiply the load; GETs are
		// hedged to a second backend when -hedge-delay or -hedge-quantile is set.
		RetryBudget: lb.RetryBudget{Ratio: cfg.retryBudget, MinPerSecond: cfg.retryMin},
		Hedge:       lb.Hedge{Delay: cfg.hedgeDelay, Quantile: cfg.hedgeQ},
		// Every lease goes through lb's proxy, which ends each one exactly once: the garbage
		// collector's safety net for forgotten leases would have nothing to catch.
		UntrackedLeases: true,
		// A request the breaker refused never reached the backend: it says nothing new about
		// the backend's health, so it does not count toward passive ejection (the proxy still
		// retries it elsewhere).
		IsFailure: func(err error) bool {
			return !errors.Is(err, breaker.ErrOpen) && !errors.Is(err, context.Canceled)
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}

	// lb's reverse proxy: picks per attempt, retries idempotent requests on another backend
	// (keeping bodies up to retryBodyMax in memory to resend them), ends each lease when the
	// response body is closed. Below it, the trace's client span (tracing) around the picked
	// backend's breaker (breaker) around the connection pool.
	var rt http.RoundTripper = upstreamTransport{}
	if tracer != nil {
		rt = tracer.Transport(rt)
	}
	p.handler, err = lb.NewProxy(p.balancer, lb.ProxyOptions[*upstream]{
		URL:               func(u *upstream) *url.URL { return u.url },
		Transport:         rt,
		Attempts:          cfg.attempts,
		MaxRetryBodyBytes: cfg.retryBodyMax,
		Key:               stickyKey(cfg.stickyHeader, cfg.stickyCookie),
		Logger:            log,
	})
	if err != nil {
		p.balancer.Close()
		return nil, err
	}
	// httputil.ReverseProxy reports some errors (a client gone mid-body) on its own log.
	p.handler.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	if p.front, p.adaptive, err = overloadFront(p.handler, cfg.adaptiveMax); err != nil {
		p.balancer.Close()
		return nil, err
	}
	return p, nil
}

// stickyKey reads a request's session key from the header, else from the cookie. Requests
// without a key are spread round robin even under the sticky policy.
func stickyKey(header, cookie string) func(*http.Request) string {
	return func(r *http.Request) string {
		if k := r.Header.Get(header); k != "" {
			return k
		}
		if c, err := r.Cookie(cookie); err == nil {
			return c.Value
		}
		return ""
	}
}

// upstream returns the backend with the given name.
func (p *proxy) upstream(name string) (*upstream, bool) {
	for _, u := range p.upstreams {
		if u.name == name {
			return u, true
		}
	}
	return nil, false
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.front.ServeHTTP(w, r) }

// Close stops the balancer's prober and timers and drops idle backend connections.
func (p *proxy) Close() {
	p.balancer.Close()
	p.base.CloseIdleConnections()
}

// newTracer returns nil when tracing is off. With "json" spans go as JSON lines to
// cfg.traceOut; any other value is an OTLP/HTTP traces endpoint. Either way a batch processor
// exports them off the request path.
func newTracer(cfg config) (*tracing.Tracer, error) {
	var exp tracing.Exporter
	switch {
	case cfg.trace == "":
		return nil, nil
	case cfg.trace == "json":
		exp = tracing.NewJSONExporter(cfg.traceOut)
	default:
		otlp, err := tracing.NewOTLPExporter(tracing.OTLPOptions{URL: cfg.trace, ServiceName: "girder-proxy"})
		if err != nil {
			return nil, err
		}
		exp = otlp
	}
	bp, err := tracing.NewBatchProcessor(exp, tracing.BatchOptions{Logger: cfg.logger})
	if err != nil {
		return nil, err
	}
	return tracing.New(tracing.Options{Name: "girder-proxy", Processors: []tracing.Processor{bp}})
}
