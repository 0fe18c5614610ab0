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
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/ratelimitprom"
	"github.com/girder-go/girder/ratelimit/redislimit"
	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/replica/replicaprom"
	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/tracingprom"
)

// The names that label the components' series: the breaker and the replica router are both the
// database's, the bus the service's; the Redis limiter is the per-client quota, the adaptive one
// the limit on everyone's requests together; the span processors are where their spans go
// (the ring behind /debug/spans, JSON lines with -trace-json).
const (
	databaseName    = "database"
	busName         = "userservice"
	cacheName       = "users"
	clientLimiter   = "clients"
	adaptiveLimiter = "users"
	tracerName      = "userservice"
	spansMemory     = "memory"
	spansJSON       = "json"
)

// metrics is what GET /metrics serves: the request histogram by route (promhttpx), the
// database's breaker (breakerprom), the event bus (eventbusprom) and, with -postgres, the replica
// router (replicaprom), the users cache (cacheprom), the rate limits (ratelimitprom) and the
// tracer's export pipeline (tracingprom). Each is watched (state read at scrape time) and hooked
// (counters and histograms fed as things happen).
type metrics struct {
	http     *promhttpx.Server
	breakers *breakerprom.Collector
	buses    *eventbusprom.Collector
	routers  *replicaprom.Collector
	caches   *cacheprom.Collector
	limiters *ratelimitprom.Collector
	spans    *tracingprom.Collector
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
	if m.limiters, err = ratelimitprom.New(ratelimitprom.Options{}); err != nil {
		return nil, err
	}
	if m.spans, err = tracingprom.New(tracingprom.Options{}); err != nil {
		return nil, err
	}
	m.http.Registry.MustRegister(m.breakers, m.buses, m.routers, m.caches, m.limiters, m.spans)
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

// limiterHooks are the Redis limiter's hooks: each round trip's duration by result, the
// failure policy's decisions, Redis's recoveries. nil metrics has none.
func (m *metrics) limiterHooks() redislimit.Hooks {
	if m == nil {
		return redislimit.Hooks{}
	}
	return m.limiters.RedisHooks(clientLimiter)
}

// clientDecider has the Redis limiter's limit and failure state read at scrape time and returns
// it wrapped so that its decisions are counted by result; nil metrics returns r itself.
func (m *metrics) clientDecider(r *redislimit.Limiter) (ratelimit.Decider, error) {
	if m == nil {
		return r, nil
	}
	if err := m.limiters.WatchRedis(clientLimiter, r); err != nil {
		return nil, err
	}
	return m.limiters.Decider(clientLimiter, r)
}

// watchAdaptive reads the adaptive limit's Stats at scrape time; a nil a (-adaptive-max -1) or
// nil metrics does nothing.
func (m *metrics) watchAdaptive(a *ratelimit.Adaptive) error {
	if m == nil || a == nil {
		return nil
	}
	return m.limiters.WatchAdaptive(adaptiveLimiter, a)
}

// onExport is the export-duration hook of the batch processor called name; nil metrics has none.
func (m *metrics) onExport(name string) func(tracing.ExportInfo) {
	if m == nil {
		return nil
	}
	return m.spans.OnExport(name)
}

// processor has bp's Stats (queued, dropped, exported, failed spans) read at scrape time under
// name and returns it wrapped so that the spans handed to it count as ended; nil metrics returns
// bp itself.
func (m *metrics) processor(name string, bp *tracing.BatchProcessor) (tracing.Processor, error) {
	if m == nil {
		return bp, nil
	}
	if err := m.spans.Watch(name, bp); err != nil {
		return nil, err
	}
	return m.spans.Processor(name, bp)
}

// sampler returns s wrapped so that the spans started count by sampling decision; nil metrics
// returns s itself.
func (m *metrics) sampler(s tracing.Sampler) (tracing.Sampler, error) {
	if m == nil {
		return s, nil
	}
	return m.spans.Sampler(tracerName, s)
}
