package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cacheprom"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbusprom"
	"github.com/girder-go/girder/examples/internal/promhttpx"
	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/replica/replicaprom"
)

// The names that label the components' series: the breaker and the replica router are both the
// database's, the bus the service's.
const (
	databaseName = "database"
	busName      = "userservice"
	cacheName    = "users"
)

// metrics is what GET /metrics serves: the request histogram by route (promhttpx), the
// database's breaker (breakerprom), the event bus (eventbusprom) and, with -postgres, the replica
// router (replicaprom). Each is watched (state read at scrape time) and hooked (counters and
// histograms fed as things happen).
type metrics struct {
	http     *promhttpx.Server
	breakers *breakerprom.Collector
	buses    *eventbusprom.Collector
	routers  *replicaprom.Collector
	caches   *cacheprom.Collector
}

func newMetrics() (*metrics, error) {
	m := &metrics{http: promhttpx.New()}
	var err error
	if m.breakers, err = breakerprom.New(breakerprom.Options{}); err != nil {
		return nil, err
	}
	if m.buses, err = eventbusprom.New(eventbusprom.Options{}); err != nil {
		return nil, err
	}
	if m.routers, err = replicaprom.New(replicaprom.Options{}); err != nil {
		return nil, err
	}
	if m.caches, err = cacheprom.New(cacheprom.Options{}); err != nil {
		return nil, err
	}
	m.http.Registry.MustRegister(m.breakers, m.buses, m.routers, m.caches)
	return m, nil
}

// breakerHooks are the database breaker's hooks; nil metrics has none.
func (m *metrics) breakerHooks() breaker.Hooks {
	if m == nil {
		return breaker.Hooks{}
	}
	return m.breakers.Hooks(databaseName)
}

// busHooks are the event bus's hooks; nil metrics has none.
func (m *metrics) busHooks() eventbus.Hooks {
	if m == nil {
		return eventbus.Hooks{}
	}
	return m.buses.Hooks(busName)
}

// routerHooks returns own with the router collector's hooks added; nil metrics adds none.
func (m *metrics) routerHooks(own replica.Hooks) replica.Hooks {
	if m == nil {
		return own
	}
	prom := m.routers.Hooks(databaseName)
	return replica.Hooks{
		OnNodeChange: func(c replica.NodeChangeInfo) {
			prom.OnNodeChange(c)
			if own.OnNodeChange != nil {
				own.OnNodeChange(c)
			}
		},
		OnRoute: func(ctx context.Context, r replica.RouteInfo) {
			prom.OnRoute(ctx, r)
			if own.OnRoute != nil {
				own.OnRoute(ctx, r)
			}
		},
	}
}

// watch has the breaker, the bus and the router (with -postgres) read at scrape time.
func (m *metrics) watch(s *server) error {
	if err := m.breakers.Watch(databaseName, s.users.breaker); err != nil {
		return err
	}
	if err := m.buses.Watch(busName, s.events.bus); err != nil {
		return err
	}
	if s.pg != nil {
		return m.routers.Watch(databaseName, s.pg.router)
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

// cacheHooks returns own with the cache collector's load hooks added (its hit and miss hooks are
// nil: hits and misses are read from Stats at scrape time); nil metrics adds none.
func (m *metrics) cacheHooks(own cache.Hooks[int64]) cache.Hooks[int64] {
	if m == nil {
		return own
	}
	prom := cacheprom.Hooks[int64](m.caches, cacheName)
	hooks := own
	hooks.OnLoad = func(ctx context.Context, i cache.LoadInfo[int64]) {
		prom.OnLoad(ctx, i)
		own.OnLoad(ctx, i)
	}
	hooks.OnError = func(ctx context.Context, i cache.ErrorInfo[int64]) {
		prom.OnError(ctx, i)
		own.OnError(ctx, i)
	}
	return hooks
}

// watchCache reads the users cache's Stats and its memory level's size at scrape time.
func (m *metrics) watchCache(c *cache.Cache[int64, User], l1 *cache.Memory[int64, User]) error {
	if m == nil {
		return nil
	}
	return errors.Join(m.caches.Watch(cacheName, c), m.caches.WatchEntries(cacheName, "memory", l1))
}
