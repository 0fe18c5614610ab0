package main

import (
	"context"
	"net/http"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
	"github.com/girder-go/girder/examples/internal/promhttpx"
)

// metrics is what GET /metrics serves: the request histogram by route (promhttpx), and the node
// breakers through breakerprom, one series set per node name. Hooks feed the transition and
// rejection counters and the call histogram; Watch has the state and window read at scrape time.
type metrics struct {
	http     *promhttpx.Server
	breakers *breakerprom.Collector
}

func newMetrics() (*metrics, error) {
	m := &metrics{http: promhttpx.New()}
	var err error
	if m.breakers, err = breakerprom.New(breakerprom.Options{}); err != nil {
		return nil, err
	}
	m.http.Registry.MustRegister(m.breakers)
	return m, nil
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
