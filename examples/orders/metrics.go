package main

import (
	"context"
	"net/http"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cacheprom"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbusprom"
	"github.com/girder-go/girder/examples/internal/promhttpx"
	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/tracingprom"
)

// busName labels the bus's series (bus="orders" on both transports, transport="orders" on the
// Redis Streams consumers' own); mailerBreaker the mailer's breaker; viewName the read model's
// cache and its one level; spansOTLP the span processor of -otlp.
const (
	busName       = "orders"
	mailerBreaker = "mailer"
	viewName      = "orders"
	spansOTLP     = "otlp"
)

// metrics is what GET /metrics serves: the request histogram by route (promhttpx), the event
// bus through eventbusprom (its subscriptions or Redis Streams consumers read at scrape time,
// publications, drops and handling durations from its hooks), the mailer's breaker through
// breakerprom, the read model's cache through cacheprom (its Stats and size read at scrape time)
// and, with -otlp, the span export pipeline through tracingprom. The event store has no
// collector: its hooks only log.
type metrics struct {
	http     *promhttpx.Server
	buses    *eventbusprom.Collector
	breakers *breakerprom.Collector
	caches   *cacheprom.Collector
	spans    *tracingprom.Collector
}

func newMetrics() (*metrics, error) {
	m := &metrics{http: promhttpx.New()}
	var err error
	if m.buses, err = eventbusprom.New(eventbusprom.Options{}); err != nil {
		return nil, err
	}
	if m.breakers, err = breakerprom.New(breakerprom.Options{}); err != nil {
		return nil, err
	}
	if m.caches, err = cacheprom.New(cacheprom.Options{}); err != nil {
		return nil, err
	}
	if m.spans, err = tracingprom.New(tracingprom.Options{}); err != nil {
		return nil, err
	}
	m.http.Registry.MustRegister(m.buses, m.breakers, m.caches, m.spans)
	return m, nil
}

// busHooks returns own with the bus collector's hooks added; nil metrics adds none.
func (m *metrics) busHooks(own eventbus.Hooks) eventbus.Hooks {
	if m == nil {
		return own
	}
	prom := m.buses.Hooks(busName)
	return eventbus.Hooks{
		OnPublish: join(prom.OnPublish, own.OnPublish),
		OnDeliver: join(prom.OnDeliver, own.OnDeliver),
		OnDrop:    join(prom.OnDrop, own.OnDrop),
		OnFail:    join(prom.OnFail, own.OnFail),
	}
}

// mailerHooks returns own with the breaker collector's hooks added; nil metrics adds none.
func (m *metrics) mailerHooks(own breaker.Hooks) breaker.Hooks {
	if m == nil {
		return own
	}
	prom := m.breakers.Hooks(mailerBreaker)
	return breaker.Hooks{
		OnStateChange: func(c breaker.StateChangeInfo) {
			prom.OnStateChange(c)
			if own.OnStateChange != nil {
				own.OnStateChange(c)
			}
		},
		OnOutcome: join(prom.OnOutcome, own.OnOutcome),
	}
}

// join calls both hooks; b may be nil.
func join[I any](a, b func(context.Context, I)) func(context.Context, I) {
	if b == nil {
		return a
	}
	return func(ctx context.Context, info I) {
		a(ctx, info)
		b(ctx, info)
	}
}

// watch has the bus (or the Redis Streams transport) and the mailer's breaker, when this role
// has one, read at scrape time.
func (m *metrics) watch(b *bus, p *pipeline) error {
	var err error
	switch {
	case b.inproc != nil:
		err = m.buses.Watch(busName, b.inproc)
	case b.streams != nil:
		err = m.buses.WatchStreams(busName, b.streams)
	}
	if err == nil && p != nil {
		err = m.breakers.Watch(mailerBreaker, p.breaker)
	}
	return err
}

// routes names mux's patterns as the request histogram's route label; nil metrics does nothing.
func (m *metrics) routes(mux *http.ServeMux) *http.ServeMux {
	if m == nil {
		return mux
	}
	return m.http.Routes(mux)
}

// viewHooks are the read model cache's hooks (the failures it absorbs; it has no loader); nil
// metrics has none.
func (m *metrics) viewHooks() cache.Hooks[int] {
	if m == nil {
		return cache.Hooks[int]{}
	}
	return cacheprom.Hooks[int](m.caches, viewName)
}

// watchView reads the read model cache's Stats and its level's size at scrape time; nil metrics
// does nothing.
func (m *metrics) watchView(c *cache.Cache[int, Order], level *cache.Memory[int, Order]) error {
	if m == nil {
		return nil
	}
	if err := m.caches.Watch(viewName, c); err != nil {
		return err
	}
	return m.caches.WatchEntries(viewName, viewName, level)
}

// onExport is the -otlp processor's export-duration hook; nil metrics has none.
func (m *metrics) onExport() func(tracing.ExportInfo) {
	if m == nil {
		return nil
	}
	return m.spans.OnExport(spansOTLP)
}

// processor has the -otlp processor's Stats read at scrape time and returns it wrapped so that
// the spans handed to it count as ended; nil metrics returns bp itself.
func (m *metrics) processor(bp *tracing.BatchProcessor) (tracing.Processor, error) {
	if m == nil {
		return bp, nil
	}
	if err := m.spans.Watch(spansOTLP, bp); err != nil {
		return nil, err
	}
	return m.spans.Processor(spansOTLP, bp)
}
