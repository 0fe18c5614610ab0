package main

import (
	"context"
	"net/http"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbusprom"
	"github.com/girder-go/girder/examples/internal/promhttpx"
)

// busName labels the bus's series (bus="orders" on both transports, transport="orders" on the
// Redis Streams consumers' own); mailerBreaker the mailer's breaker.
const (
	busName       = "orders"
	mailerBreaker = "mailer"
)

// metrics is what GET /metrics serves: the request histogram by route (promhttpx), the event
// bus through eventbusprom (its subscriptions or Redis Streams consumers read at scrape time,
// publications, drops and handling durations from its hooks), and the mailer's breaker through
// breakerprom.
type metrics struct {
	http     *promhttpx.Server
	buses    *eventbusprom.Collector
	breakers *breakerprom.Collector
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
	m.http.Registry.MustRegister(m.buses, m.breakers)
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
