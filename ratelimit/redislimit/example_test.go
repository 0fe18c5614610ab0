package redislimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/redislimit"
	"github.com/redis/go-redis/v9"
)

func ExampleLimiter() {
	mr, _ := miniredis.Run() // a real deployment points at its Redis
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()

	r, _ := redislimit.New(redislimit.Options{
		Client:  client,
		Limit:   ratelimit.PerMinute(100),
		Prefix:  "rl:api:",
		Failure: redislimit.FailClosed,
	})
	res, err := r.Decide(context.Background(), "user-42", 10)
	fmt.Println(res.Allowed, res.Remaining, err)
	// Output:
	// true 90 <nil>
}

func ExampleHybrid() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	mr.SetTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // Redis's clock stands still here
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()

	shared, _ := redislimit.New(redislimit.Options{Client: client, Limit: ratelimit.PerMinute(1000)})
	// Each process leases 50 tokens per round trip. With P processes, over any window w at most
	// 1000 + (1000/min)·w + min(P·50, (1000/min)·LeaseTTL) requests pass.
	h, _ := redislimit.NewHybrid(redislimit.HybridOptions{Redis: shared, LeaseSize: 50, LeaseTTL: time.Second})
	allowed := 0
	for range 120 {
		if res, err := h.Allow(context.Background(), "tenant-1"); err == nil && res.Allowed {
			allowed++
		}
	}
	res, _ := shared.Decide(context.Background(), "tenant-1", 0) // n = 0 only looks
	fmt.Println("allowed", allowed, "- left in Redis", res.Remaining)
	// Output:
	// allowed 120 - left in Redis 850
}
