package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cacheprom"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbusprom"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/ratelimitprom"
	"github.com/girder-go/girder/ratelimit/redislimit"
	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/tracingprom"
)

func init() { register(promRows) }

// promRows measure what the Prometheus collectors fed on the hot path add to it: each row runs
// the same operation with the collector's hooks or wrappers (Girder) and without (Peer).
// Collectors that read Stats at scrape time add nothing and have no row, but for the count of a
// Memory level's hits, which cacheprom's Watch needs and MemoryOptions.RecordStats turns on.
func promRows(env *Env) []Row {
	const without = "girder without hooks"
	return []Row{
		{Package: "eventbusprom", Op: "sync publish+deliver, 1 subscriber, eventbusprom hooks", Girder: eventbusPromSync(true),
			Peer: without, PeerFn: eventbusPromSync(false)},
		{Package: "eventbusprom", Op: "sync publish+deliver, 1 subscriber, an empty OnDeliver (its clock reads alone)",
			Girder: eventbusPromSyncWith(eventbus.Hooks{OnDeliver: func(context.Context, eventbus.DeliverInfo) {}}),
			Peer:   without, PeerFn: eventbusPromSync(false)},
		{Package: "eventbusprom", Op: "async end to end, 1 subscriber, eventbusprom hooks", Girder: eventbusPromAsync(true),
			Peer: without, PeerFn: eventbusPromAsync(false)},
		{Package: "ratelimitprom", Op: "local Decide, ratelimitprom Decider", Girder: ratelimitPromLocal(true, false),
			Peer: "girder without wrapper", PeerFn: ratelimitPromLocal(false, false)},
		{Package: "ratelimitprom", Op: "parallel local Decide, one limiter, ratelimitprom Decider", Girder: ratelimitPromLocal(true, true),
			Peer: "girder without wrapper", PeerFn: ratelimitPromLocal(false, true)},
		{Package: "ratelimitprom", Op: "keyed Decide, 1024 clients, ratelimitprom Decider", Girder: ratelimitPromKeyed(true),
			Peer: "girder without wrapper", PeerFn: ratelimitPromKeyed(false)},
		{Package: "ratelimitprom", Op: "Redis decision (GCRA), ratelimitprom RedisHooks", Girder: ratelimitPromRedis(env, true),
			Peer: without, PeerFn: ratelimitPromRedis(env, false)},
		{Package: "tracingprom", Op: "span start+end, sampled, tracingprom Processor", Girder: tracingPromStartEnd(false, true),
			Peer: "girder without wrappers", PeerFn: tracingPromStartEnd(false, false)},
		{Package: "tracingprom", Op: "span start+end, sampled, tracingprom Sampler and Processor", Girder: tracingPromStartEnd(true, true),
			Peer: "girder without wrappers", PeerFn: tracingPromStartEnd(false, false)},
		{Package: "cacheprom", Op: "L1 hit: Get, cacheprom hooks", Girder: cacheGirderGet(cachePromL1(true, false)),
			Peer: without, PeerFn: cacheGirderGet(cachePromL1(false, false))},
		{Package: "cacheprom", Op: "L1 hit: Get, cacheprom hooks, Memory RecordStats (hits for Watch)", Girder: cacheGirderGet(cachePromL1(true, true)),
			Peer: without, PeerFn: cacheGirderGet(cachePromL1(false, false))},
		{Package: "cacheprom", Op: "Delete, then Get: miss and load, cacheprom hooks", Girder: cachePromLoad(true),
			Peer: without, PeerFn: cachePromLoad(false)},
	}
}

func eventbusPromHooks(on bool) eventbus.Hooks {
	if !on {
		return eventbus.Hooks{}
	}
	c, err := eventbusprom.New(eventbusprom.Options{})
	if err != nil {
		panic(err)
	}
	return c.Hooks("bench")
}

func eventbusPromSync(hooks bool) func(*testing.B) {
	return func(b *testing.B) { eventbusPromSyncWith(eventbusPromHooks(hooks))(b) }
}

func eventbusPromSyncWith(hooks eventbus.Hooks) func(*testing.B) {
	return func(b *testing.B) {
		bus, _ := eventbus.New(eventbus.Options{Hooks: hooks})
		defer bus.Close(context.Background())
		topic, _ := eventbus.NewTopic[eventbusEvent](bus, "user.created")
		var n int
		_, _ = topic.Subscribe(func(_ context.Context, e eventbusEvent) error { n += e.ID; return nil },
			eventbus.SubscribeOptions[eventbusEvent]{Name: "mailer"})
		ctx, e := context.Background(), eventbusEvent{ID: 1, Email: "ada@example.com"}
		for b.Loop() {
			_ = topic.Publish(ctx, e)
		}
	}
}

// eventbusPromAsync times b.N publishes and the wait until the subscriber has handled them all,
// as eventbusAsync does.
func eventbusPromAsync(hooks bool) func(*testing.B) {
	return func(b *testing.B) {
		bus, _ := eventbus.New(eventbus.Options{Hooks: eventbusPromHooks(hooks)})
		topic, _ := eventbus.NewTopic[eventbusEvent](bus, "user.created")
		var handled atomic.Int64
		_, _ = topic.Subscribe(func(context.Context, eventbusEvent) error {
			handled.Add(1)
			return nil
		}, eventbus.SubscribeOptions[eventbusEvent]{Name: "mailer", Async: true})
		ctx, e := context.Background(), eventbusEvent{ID: 1, Email: "ada@example.com"}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = topic.Publish(ctx, e)
		}
		_ = bus.Close(ctx)
		if handled.Load() != int64(b.N) {
			b.Fatalf("handled %d of %d", handled.Load(), b.N)
		}
	}
}

func ratelimitPromDecider(b *testing.B, d ratelimit.Decider, wrap bool) ratelimit.Decider {
	if !wrap {
		return d
	}
	c, err := ratelimitprom.New(ratelimitprom.Options{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := c.Decider("bench", d)
	if err != nil {
		b.Fatal(err)
	}
	return w
}

func ratelimitPromLocal(wrap, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		d := ratelimitPromDecider(b, ratelimitNew(b, ratelimit.Limit{Rate: ratelimitHighRate, Burst: 1000}), wrap)
		ratelimitRun(b, parallel, func(ctx context.Context, _ int) { _, _ = d.Decide(ctx, "", 1) })
	}
}

func ratelimitPromKeyed(wrap bool) func(*testing.B) {
	return func(b *testing.B) {
		d := ratelimitPromDecider(b, ratelimitNewKeyed(b), wrap)
		ratelimitRun(b, false, func(ctx context.Context, i int) {
			_, _ = d.Decide(ctx, ratelimitKeyNames[i&(ratelimitKeys-1)], 1)
		})
	}
}

func ratelimitPromRedis(env *Env, hooks bool) func(*testing.B) {
	return func(b *testing.B) {
		o := redislimit.Options{Client: ratelimitClient(b, env), Limit: ratelimitRedisLimit,
			Prefix: "bench:prom:", Failure: redislimit.FailClosed}
		if hooks {
			c, err := ratelimitprom.New(ratelimitprom.Options{})
			if err != nil {
				b.Fatal(err)
			}
			o.Hooks = c.RedisHooks("bench")
		}
		r, err := redislimit.New(o)
		if err != nil {
			b.Fatal(err)
		}
		ratelimitRun(b, false, func(ctx context.Context, i int) {
			res, err := r.Decide(ctx, ratelimitKeyNames[i&(ratelimitRedisKeys-1)], 1)
			if err != nil || res.Fallback {
				b.Fatalf("redis decision failed: %v %+v", err, res)
			}
		})
	}
}

// tracingNop is a processor that does nothing, so that the rows measure the wrappers alone.
type tracingNop struct{}

func (tracingNop) OnEnd(*tracing.Span)              {}
func (tracingNop) ForceFlush(context.Context) error { return nil }
func (tracingNop) Shutdown(context.Context) error   { return nil }

func tracingPromStartEnd(sampler, processor bool) func(*testing.B) {
	return func(b *testing.B) {
		c, err := tracingprom.New(tracingprom.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var s tracing.Sampler = tracing.AlwaysSample()
		var p tracing.Processor = tracingNop{}
		if sampler {
			if s, err = c.Sampler("bench", s); err != nil {
				b.Fatal(err)
			}
		}
		if processor {
			if p, err = c.Processor("bench", p); err != nil {
				b.Fatal(err)
			}
		}
		tr, err := tracing.New(tracing.Options{Sampler: s, Processors: []tracing.Processor{p}})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for b.Loop() {
			_, span := tr.Start(ctx, "/foo")
			span.End()
		}
	}
}

// cachePromHooks are cacheprom's hooks for a cache called "bench", or none.
func cachePromHooks(on bool) cache.Hooks[string] {
	if !on {
		return cache.Hooks[string]{}
	}
	c, err := cacheprom.New(cacheprom.Options{})
	if err != nil {
		panic(err)
	}
	return cacheprom.Hooks[string](c, "bench")
}

// cachePromL1 returns a Cache with a Memory level only, every key loaded, with cacheprom's hooks
// or none; recordStats has the Memory count its hits and misses, which Watch reads.
func cachePromL1(hooks, recordStats bool) func(*testing.B) *cache.Cache[string, cacheUser] {
	return func(b *testing.B) *cache.Cache[string, cacheUser] {
		mem := cacheMust(cache.NewMemory(cache.MemoryOptions[string, cacheUser]{MaxSize: 10 * cacheKeyCount, RecordStats: recordStats}))
		b.Cleanup(func() { mem.Close() })
		return cacheGirderWith(b, cache.Options[string, cacheUser]{
			Levels: []cache.Level[string, cacheUser]{{Store: mem, TTL: time.Hour}},
			Hooks:  cachePromHooks(hooks),
		})
	}
}

// cachePromLoad times a Delete and a Get that misses and calls the Loader, with cacheprom's hooks
// (a load histogram observation, and the clock reads the cache makes for LoadInfo) or none.
func cachePromLoad(hooks bool) func(*testing.B) {
	return func(b *testing.B) {
		c, keys, ctx := cachePromL1(hooks, false)(b), cacheKeys(), context.Background()
		i := 0
		for b.Loop() {
			k := keys[i&(cacheKeyCount-1)]
			_ = c.Delete(ctx, k)
			if _, err := c.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
}
