package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/redislimit"
	"github.com/redis/go-redis/v9"
)

func init() {
	register(chapter{
		name:  "ratelimit",
		title: "token buckets in process and on Redis keep each client to its quota",
		run:   tourRatelimit,
	})
}

func tourRatelimit(ctx context.Context, w io.Writer) error {
	if err := tourRatelimitLocal(ctx, w); err != nil {
		return err
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return err
	}
	defer mr.Close()
	if err := tourRatelimitShared(ctx, w, mr); err != nil {
		return err
	}
	return tourRatelimitHTTP(w)
}

// tourRatelimitLocal shows one bucket in process: a burst, then the steady rate.
func tourRatelimitLocal(ctx context.Context, w io.Writer) error {
	l, err := ratelimit.New(ratelimit.Limit{Rate: 100, Burst: 5}) // 100/s, 5 at once
	if err != nil {
		return err
	}
	passed := 0
	for range 20 {
		if l.Allow() {
			passed++
		}
	}
	fmt.Fprintf(w, "local bucket 100/s, burst 5:       20 calls at once, %d allowed\n", passed)
	start := time.Now()
	for range 5 {
		if err := l.Wait(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "Wait for 5 more:                   took about %v (one per 10 ms)\n", time.Since(start).Round(10*time.Millisecond))
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := l.ReserveN(5); err != nil {
		return err
	}
	fmt.Fprintf(w, "Wait with 1 ms left, 50 ms queued: %v\n", l.Wait(short))
	return nil
}

// tourRatelimitShared shows two "servers" sharing one quota through Redis, then the hybrid mode.
func tourRatelimitShared(ctx context.Context, w io.Writer, mr *miniredis.Miniredis) error {
	var servers [2]*redislimit.Limiter
	for i := range servers {
		c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer c.Close()
		r, err := redislimit.New(redislimit.Options{Client: c, Limit: ratelimit.PerMinute(10), Prefix: "tour:api:"})
		if err != nil {
			return err
		}
		servers[i] = r
	}
	allowed := [2]int{}
	for i := range 30 {
		res, err := servers[i%2].Allow(ctx, "user-7")
		if err != nil {
			return err
		}
		if res.Allowed {
			allowed[i%2]++
		}
	}
	fmt.Fprintf(w, "Redis, 10/min shared by 2 servers: 30 calls, %d + %d allowed\n", allowed[0], allowed[1])

	var roundTrips int
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer c.Close()
	c.AddHook(tourRatelimitCounter{&roundTrips})
	r, err := redislimit.New(redislimit.Options{Client: c, Limit: ratelimit.PerMinute(1000), Prefix: "tour:hybrid:"})
	if err != nil {
		return err
	}
	h, err := redislimit.NewHybrid(redislimit.HybridOptions{Redis: r, LeaseSize: 50})
	if err != nil {
		return err
	}
	for range 500 {
		if _, err := h.Allow(ctx, "user-7"); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "hybrid, leases of 50:              500 decisions, %d Redis commands (10 leases, 2 to load the script)\n", roundTrips)

	mr.Close()
	closed, err := redislimit.New(redislimit.Options{Client: c, Limit: ratelimit.PerMinute(10), Failure: redislimit.FailClosed,
		Hooks: redislimit.Hooks{OnFallback: func(_ context.Context, info redislimit.FallbackInfo) {
			fmt.Fprintf(w, "  hook: Redis failed for %s, policy decided allowed=%v\n", info.Key, info.Allowed)
		}}})
	if err != nil {
		return err
	}
	res, err := closed.Allow(ctx, "user-7")
	fmt.Fprintf(w, "Redis down, fail closed:           allowed=%v fallback=%v err=%v\n", res.Allowed, res.Fallback, err)
	return mr.Restart()
}

// tourRatelimitCounter counts the commands a client sends.
type tourRatelimitCounter struct{ n *int }

func (tourRatelimitCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h tourRatelimitCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		*h.n++
		return next(ctx, cmd)
	}
}
func (tourRatelimitCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// tourRatelimitHTTP shows the middleware's answers to one client over its quota.
func tourRatelimitHTTP(w io.Writer) error {
	k, err := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerMinute(2), MaxKeys: 10_000})
	if err != nil {
		return err
	}
	defer k.Close()
	mw, err := ratelimit.Middleware(ratelimit.MiddlewareOptions{Limiter: k})
	if err != nil {
		return err
	}
	h := mw(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, "ok") }))
	for i := range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/orders", nil))
		hd := rec.Header()
		fmt.Fprintf(w, "HTTP request %d: %d  RateLimit-Policy: %s  RateLimit: %s", i+1, rec.Code, hd.Get("RateLimit-Policy"), hd.Get("RateLimit"))
		if ra := hd.Get("Retry-After"); ra != "" {
			fmt.Fprintf(w, "  Retry-After: %s", ra)
		}
		fmt.Fprintln(w)
	}
	return nil
}
