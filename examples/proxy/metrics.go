package main

import (
	"net/http"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
	"github.com/girder-go/girder/examples/internal/promhttpx"
	"github.com/girder-go/girder/lb"
	"github.com/girder-go/girder/lb/lbprom"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/ratelimitprom"
)

// balancerName labels the balancer's series; each backend's breaker is labelled with the
// backend's name. clientLimiter and adaptiveLimiter label the limiters' series: the per-client
// rate limit (-client-rate) and the adaptive concurrency limit in front of the backends.
const (
	balancerName    = "proxy"
	clientLimiter   = "client"
	adaptiveLimiter = "backends"
)

// metrics is what GET /metrics serves: the request histogram by route (promhttpx; every proxied
// request is route "/"), the balancer through lbprom (backend health and load read at scrape
// time, per-backend latency and health changes from its hooks) and the backends' breakers
// through breakerprom, and the two limiters through ratelimitprom (the per-client limit's
// decisions counted by a wrapper of its Decider, its number of clients and the adaptive limit's
// Stats read at scrape time).
type metrics struct {
	http     *promhttpx.Server
	balancer *lbprom.Collector
	breakers *breakerprom.Collector
	limiters *ratelimitprom.Collector
}

func newMetrics() (*metrics, error) {
	m := &metrics{http: promhttpx.New()}
	var err error
	if m.balancer, err = lbprom.New(lbprom.Options{}); err != nil {
		return nil, err
	}
	if m.breakers, err = breakerprom.New(breakerprom.Options{}); err != nil {
		return nil, err
	}
	if m.limiters, err = ratelimitprom.New(ratelimitprom.Options{}); err != nil {
		return nil, err
	}
	m.http.Registry.MustRegister(m.balancer, m.breakers, m.limiters)
	return m, nil
}

// breakerHooks are the hooks of the breaker of the backend called name; nil metrics has none.
func (m *metrics) breakerHooks(name string) breaker.Hooks {
	if m == nil {
		return breaker.Hooks{}
	}
	return m.breakers.Hooks(name)
}

// balancerHooks are the balancer's hooks; nil metrics has none.
func (m *metrics) balancerHooks() lb.Hooks {
	if m == nil {
		return lb.Hooks{}
	}
	return m.balancer.Hooks(balancerName)
}

// watch has the balancer, every backend's breaker and the adaptive limit (unless
// -adaptive-max is negative) read at scrape time.
func (m *metrics) watch(p *proxy) error {
	if err := m.balancer.Watch(balancerName, p.balancer); err != nil {
		return err
	}
	for _, u := range p.upstreams {
		if err := m.breakers.Watch(u.name, u.breaker); err != nil {
			return err
		}
	}
	if p.adaptive != nil {
		return m.limiters.WatchAdaptive(adaptiveLimiter, p.adaptive)
	}
	return nil
}

// clientDecider has the per-client limiter's clients and limit read at scrape time and returns
// it wrapped so that its decisions are counted; nil metrics returns k itself.
func (m *metrics) clientDecider(k *ratelimit.Keyed) (ratelimit.Decider, error) {
	if m == nil {
		return k, nil
	}
	if err := m.limiters.WatchKeyed(clientLimiter, k); err != nil {
		return nil, err
	}
	return m.limiters.Decider(clientLimiter, k)
}

// routes names mux's patterns as the request histogram's route label; nil metrics does nothing.
func (m *metrics) routes(mux *http.ServeMux) *http.ServeMux {
	if m == nil {
		return mux
	}
	return m.http.Routes(mux)
}
