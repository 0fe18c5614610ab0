package main

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/redislimit"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	uberrl "go.uber.org/ratelimit"
	xrate "golang.org/x/time/rate"
)

func init() { register(ratelimitRows) }

// ratelimitHighRate is high enough that the local benchmarks measure the admit path, not denials.
const ratelimitHighRate = 1e8

// ratelimitKeys is the number of clients the keyed rows spread over.
const ratelimitKeys = 1024

// ratelimitRedisKeys is the number of clients the Redis rows spread over: few enough that the
// hybrid rows reach their steady state (one lease per 100 decisions per key) in a short run.
const ratelimitRedisKeys = 8

func ratelimitRows(env *Env) []Row {
	return []Row{
		{Package: "ratelimit", Op: "local Allow", Girder: ratelimitLocalAllow,
			Peer: "x/time/rate v0.16.0", PeerFn: ratelimitXAllow},
		{Package: "ratelimit", Op: "local Allow, denied", Girder: ratelimitLocalDenied,
			Peer: "x/time/rate v0.16.0", PeerFn: ratelimitXDenied},
		{Package: "ratelimit", Op: "local Allow vs uber Take (pacer, never waits at this rate)", Girder: ratelimitLocalAllow,
			Peer: "go.uber.org/ratelimit v0.3.1", PeerFn: ratelimitUberTake},
		{Package: "ratelimit", Op: "parallel Allow, one limiter", Girder: ratelimitParallelAllow,
			Peer: "x/time/rate v0.16.0", PeerFn: ratelimitXParallel},
		{Package: "ratelimit", Op: "keyed Allow, 1024 clients", Girder: ratelimitKeyedAllow,
			Peer: "x/time/rate per key, map+RWMutex", PeerFn: ratelimitXKeyed},
		{Package: "ratelimit", Op: "parallel keyed Allow, 1024 clients", Girder: ratelimitKeyedParallel,
			Peer: "x/time/rate per key, map+RWMutex", PeerFn: ratelimitXKeyedParallel},
		{Package: "ratelimit", Op: "Redis decision (GCRA, one round trip)", Girder: ratelimitRedis(env, redislimit.GCRA, false),
			Peer: "redis_rate v10.0.1", PeerFn: ratelimitRedisRate(env, false)},
		{Package: "ratelimit", Op: "Redis decision, token bucket", Girder: ratelimitRedis(env, redislimit.TokenBucket, false),
			Peer: "redis_rate v10.0.1", PeerFn: ratelimitRedisRate(env, false)},
		{Package: "ratelimit", Op: "parallel Redis decisions (throughput)", Girder: ratelimitRedis(env, redislimit.GCRA, true),
			Peer: "redis_rate v10.0.1", PeerFn: ratelimitRedisRate(env, true)},
		{Package: "ratelimit", Op: "hybrid decision, lease 100 (vs girder pure Redis)", Girder: ratelimitHybrid(env),
			Peer: "girder Redis limiter, no lease", PeerFn: ratelimitRedis(env, redislimit.GCRA, false)},
		{Package: "ratelimit", Op: "hybrid decision, lease 100 (vs redis_rate)", Girder: ratelimitHybrid(env),
			Peer: "redis_rate v10.0.1", PeerFn: ratelimitRedisRate(env, false)},
	}
}

func ratelimitNew(b *testing.B, l ratelimit.Limit) *ratelimit.Limiter {
	lim, err := ratelimit.New(l)
	if err != nil {
		b.Fatal(err)
	}
	return lim
}

func ratelimitLocalAllow(b *testing.B) {
	l := ratelimitNew(b, ratelimit.Limit{Rate: ratelimitHighRate, Burst: 1000})
	for b.Loop() {
		l.Allow()
	}
}

func ratelimitXAllow(b *testing.B) {
	l := xrate.NewLimiter(ratelimitHighRate, 1000)
	for b.Loop() {
		l.Allow()
	}
}

func ratelimitLocalDenied(b *testing.B) {
	l := ratelimitNew(b, ratelimit.Limit{Rate: 1, Burst: 1})
	for b.Loop() {
		l.Allow()
	}
}

func ratelimitXDenied(b *testing.B) {
	l := xrate.NewLimiter(1, 1)
	for b.Loop() {
		l.Allow()
	}
}

func ratelimitUberTake(b *testing.B) {
	l := uberrl.New(ratelimitHighRate)
	for b.Loop() {
		l.Take()
	}
}

func ratelimitParallelAllow(b *testing.B) {
	l := ratelimitNew(b, ratelimit.Limit{Rate: ratelimitHighRate, Burst: 1000})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}

func ratelimitXParallel(b *testing.B) {
	l := xrate.NewLimiter(ratelimitHighRate, 1000)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow()
		}
	})
}

var ratelimitKeyNames = func() []string {
	keys := make([]string, ratelimitKeys)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
	}
	return keys
}()

func ratelimitNewKeyed(b *testing.B) *ratelimit.Keyed {
	k, err := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.Limit{Rate: ratelimitHighRate, Burst: 1000}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { k.Close() })
	return k
}

func ratelimitKeyedAllow(b *testing.B) {
	k := ratelimitNewKeyed(b)
	i := 0
	for b.Loop() {
		k.Allow(ratelimitKeyNames[i&(ratelimitKeys-1)])
		i++
	}
}

func ratelimitKeyedParallel(b *testing.B) {
	k := ratelimitNewKeyed(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k.Allow(ratelimitKeyNames[i&(ratelimitKeys-1)])
			i++
		}
	})
}

// ratelimitXKeyedMap is the usual way to key x/time/rate: a map of limiters behind a lock.
type ratelimitXKeyedMap struct {
	mu sync.RWMutex
	m  map[string]*xrate.Limiter
}

func (k *ratelimitXKeyedMap) allow(key string) bool {
	k.mu.RLock()
	l := k.m[key]
	k.mu.RUnlock()
	if l == nil {
		k.mu.Lock()
		if l = k.m[key]; l == nil {
			l = xrate.NewLimiter(ratelimitHighRate, 1000)
			k.m[key] = l
		}
		k.mu.Unlock()
	}
	return l.Allow()
}

func ratelimitXKeyed(b *testing.B) {
	k := &ratelimitXKeyedMap{m: map[string]*xrate.Limiter{}}
	i := 0
	for b.Loop() {
		k.allow(ratelimitKeyNames[i&(ratelimitKeys-1)])
		i++
	}
}

func ratelimitXKeyedParallel(b *testing.B) {
	k := &ratelimitXKeyedMap{m: map[string]*xrate.Limiter{}}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k.allow(ratelimitKeyNames[i&(ratelimitKeys-1)])
			i++
		}
	})
}

// ratelimitRedisLimit admits everything the benchmarks ask for, so both sides do the same work.
var ratelimitRedisLimit = ratelimit.Limit{Rate: 1e6, Burst: 1_000_000}

func ratelimitClient(b *testing.B, env *Env) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: env.RedisAddr})
	b.Cleanup(func() { c.Close() })
	return c
}

func ratelimitRedis(env *Env, alg redislimit.Algorithm, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		r, err := redislimit.New(redislimit.Options{Client: ratelimitClient(b, env), Limit: ratelimitRedisLimit,
			Algorithm: alg, Prefix: "bench:girder:" + alg.String() + ":", Failure: redislimit.FailClosed})
		if err != nil {
			b.Fatal(err)
		}
		decide := func(ctx context.Context, i int) {
			res, err := r.Decide(ctx, ratelimitKeyNames[i&(ratelimitRedisKeys-1)], 1)
			if err != nil || res.Fallback {
				b.Fatalf("redis decision failed: %v %+v", err, res)
			}
		}
		ratelimitRun(b, parallel, decide)
	}
}

func ratelimitRedisRate(env *Env, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		l := redis_rate.NewLimiter(ratelimitClient(b, env))
		limit := redis_rate.Limit{Rate: 1_000_000, Burst: 1_000_000, Period: time.Second}
		decide := func(ctx context.Context, i int) {
			if _, err := l.Allow(ctx, ratelimitKeyNames[i&(ratelimitRedisKeys-1)], limit); err != nil {
				b.Fatal(err)
			}
		}
		ratelimitRun(b, parallel, decide)
	}
}

func ratelimitHybrid(env *Env) func(*testing.B) {
	return func(b *testing.B) {
		r, err := redislimit.New(redislimit.Options{Client: ratelimitClient(b, env), Limit: ratelimitRedisLimit,
			Prefix: "bench:hybrid:", Failure: redislimit.FailClosed})
		if err != nil {
			b.Fatal(err)
		}
		h, err := redislimit.NewHybrid(redislimit.HybridOptions{Redis: r, LeaseSize: 100, LeaseTTL: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		ratelimitRun(b, false, func(ctx context.Context, i int) {
			res, err := h.Decide(ctx, ratelimitKeyNames[i&(ratelimitRedisKeys-1)], 1)
			if err != nil || res.Fallback {
				b.Fatalf("hybrid decision failed: %v %+v", err, res)
			}
		})
	}
}

func ratelimitRun(b *testing.B, parallel bool, decide func(context.Context, int)) {
	ctx := context.Background()
	if !parallel {
		i := 0
		for b.Loop() {
			decide(ctx, i)
			i++
		}
		return
	}
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			decide(ctx, i)
			i++
		}
	})
}
