package main

import (
	"context"
	"net/http"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
	"github.com/girder-go/girder/examples/internal/promhttpx"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/ratelimitprom"
)

// loginLimiter is the limiter label of the login limit on /metrics.
const loginLimiter = "login"

// metrics is what GET /metrics serves: the request histogram by route (promhttpx), the node
// breakers through breakerprom, one series set per node name, and the login limiter through
// ratelimitprom. Hooks feed the transition and rejection counters and the call histogram; Watch
// has the state and window read at scrape time. The limiter's decisions are counted by the
// Decider that wraps it in the login middleware; its limit and number of buckets are read at
// scrape time.
type metrics struct {
	http     *promhttpx.Server
	breakers *breakerprom.Collector
	limiters *ratelimitprom.Collector
}

func newMetrics() (*metrics, error) {
	m := &metrics{http: promhttpx.New()}
	var err error
	if m.breakers, err = breakerprom.New(breakerprom.Options{}); err != nil {
		return nil, err
	}
	if m.limiters, err = ratelimitprom.New(ratelimitprom.Options{}); err != nil {
		return nil, err
	}
	m.http.Registry.MustRegister(m.breakers, m.limiters)
	return m, nil
}

// loginDecider has the login limiter read at scrape time (girder_ratelimit_keys, its limit) and
// returns it wrapped so that each decision counts in girder_ratelimit_decisions_total, both under
// limiter="login". Nil metrics returns k itself.
func (m *metrics) loginDecider(k *ratelimit.Keyed) (ratelimit.Decider, error) {
	if m == nil {
		return k, nil
	}
	if err := m.limiters.WatchKeyed(loginLimiter, k); err != nil {
		return nil, err
	}
	return m.limiters.Decider(loginLimiter, k)
}

// nodeHooks returns own with the breaker collector's hooks of the node called name added; nil
// metrics (a node built outside run) adds none.
func (m *metrics) nodeHooks(name string, own breaker.Hooks) breaker.Hooks {
	if m == nil {
		return own
	}
	prom := m.breakers.Hooks(name)
	return breaker.Hooks{
		OnStateChange: func(c breaker.StateChangeInfo) {
			prom.OnStateChange(c)
			if own.OnStateChange != nil {
				own.OnStateChange(c)
			}
		},
		OnOutcome: func(ctx context.Context, o breaker.OutcomeInfo) {
			prom.OnOutcome(ctx, o)
			if own.OnOutcome != nil {
				own.OnOutcome(ctx, o)
			}
		},
	}
}

// watch has every node's breaker read at scrape time.
func (m *metrics) watch(nodes []*node) error {
	for _, n := range nodes {
		if err := m.breakers.Watch(n.name, n.breaker); err != nil {
			return err
		}
	}
	return nil
}

// routes names mux's patterns as the request histogram's route label; nil metrics does nothing.
func (m *metrics) routes(mux *http.ServeMux) *http.ServeMux {
	if m == nil {
		return mux
	}
	return m.http.Routes(mux)
}
