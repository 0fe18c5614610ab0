package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/girder-go/girder/ratelimit/redislimit"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// TestRatelimitRedisPaired compares a girder Redis decision with redis_rate's on a real Redis,
// alternating the two call by call so that the drift of a shared machine hits both alike (the
// table's rows run one after the other). It runs only with GIRDER_BENCH_REDIS set:
//
//	GIRDER_BENCH_REDIS=127.0.0.1:6379 go test -run RedisPaired -v .
func TestRatelimitRedisPaired(t *testing.T) {
	addr := os.Getenv("GIRDER_BENCH_REDIS")
	if addr == "" {
		t.Skip("GIRDER_BENCH_REDIS is not set")
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	r, err := redislimit.New(redislimit.Options{Client: c, Limit: ratelimitRedisLimit, Prefix: "bench:paired:", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := redis_rate.NewLimiter(c)
	limit := redis_rate.Limit{Rate: 1_000_000, Burst: 1_000_000, Period: time.Second}
	ctx := context.Background()
	const rounds = 4000
	var girder, peer time.Duration
	for i := range rounds {
		key := ratelimitKeyNames[i&(ratelimitRedisKeys-1)]
		ours := func() {
			if res, err := r.Decide(ctx, key, 1); err != nil || res.Fallback {
				t.Fatalf("girder: %v %+v", err, res)
			}
		}
		theirs := func() {
			if _, err := l.Allow(ctx, key, limit); err != nil {
				t.Fatalf("redis_rate: %v", err)
			}
		}
		first, second, d1, d2 := ours, theirs, &girder, &peer
		if i%2 == 1 {
			first, second, d1, d2 = theirs, ours, &peer, &girder
		}
		s := time.Now()
		first()
		m := time.Now()
		second()
		*d1 += m.Sub(s)
		*d2 += time.Since(m)
	}
	t.Logf("girder %v/op, redis_rate %v/op, ratio (peer/girder) %.2f", girder/rounds, peer/rounds, float64(peer)/float64(girder))
}
