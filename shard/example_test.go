package shard_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/girder-go/girder/shard"
)

func ExampleRing() {
	ring, err := shard.NewRing(shard.RingOptions[string]{})
	if err != nil {
		panic(err)
	}
	ring.Add("cache-a:6379", "cache-b:6379", "cache-c:6379")

	owner, _ := ring.Locate("user:42")
	replicas, _ := ring.LocateN(nil, "user:42", 2)
	fmt.Println(owner == replicas[0], len(replicas))

	// Removing a node moves only its own keys.
	ring.Remove("cache-c:6379")
	after, _ := ring.Locate("user:42")
	fmt.Println(owner == "cache-c:6379" || after == owner)
	// Output:
	// true 2
	// true
}

func ExampleRing_weights() {
	ring, _ := shard.NewRing(shard.RingOptions[string]{})
	ring.AddWeighted(1, "small")
	ring.AddWeighted(3, "large")
	counts := map[string]int{}
	for i := range 100_000 {
		n, _ := ring.Locate(fmt.Sprint("key-", i))
		counts[n]++
	}
	fmt.Printf("large holds about %d%%\n", (counts["large"]*100/100_000+2)/5*5)
	// Output: large holds about 75%
}

func ExampleBounded() {
	b, _ := shard.NewBounded(shard.BoundedOptions[string]{Epsilon: 0.25})
	b.Add("a", "b", "c", "d")
	// A hot key: 100 requests in flight for one key spill over instead of all hitting one node.
	var leases []shard.Lease[string]
	for range 100 {
		l, _ := b.Acquire("hot-key")
		leases = append(leases, l)
	}
	most := int64(0)
	for _, n := range b.Nodes() {
		most = max(most, b.Load(n))
	}
	fmt.Println("most on one node:", most, "limit:", b.Limit(100))
	for _, l := range leases {
		l.Release()
	}
	// Output: most on one node: 32 limit: 32
}

func ExampleHashRouter() {
	r, _ := shard.NewHashRouter(shard.HashRouterOptions{Shards: 10, HashTags: true})
	// XXH64("abc") = 0x44bc2cf5ad770999, and 0x44bc2cf5ad770999 mod 10 = 9.
	fmt.Println(r.Shard("abc"), r.Shard("user:{abc}:cart"), r.Shard("user:{abc}:orders"))
	// Output: 9 9 9
}

func ExampleRangeRouter() {
	r, err := shard.NewRangeRouter([]shard.Range[string, string]{
		{NoStart: true, End: "m", Shard: "shard-1"},
		{Start: "m", NoEnd: true, Shard: "shard-2"},
	})
	if err != nil {
		panic(err)
	}
	s, _ := r.Route("kiwi")
	fmt.Println(s)

	// shard-2 is too big: split it at "t" and move [t, ∞) to shard-3.
	v, _ := r.Split("t", "shard-2", "shard-3")
	s, _ = r.Route("tomato")
	fmt.Println(s, "version", v)

	_, err = shard.NewRangeRouter([]shard.Range[int, string]{{Start: 0, End: 10}, {Start: 20, End: 30}})
	fmt.Println(err)
	// Output:
	// shard-1
	// shard-3 version 2
	// shard: invalid ranges: gap between range 0 ending at 10 and range 1 starting at 20
}

func ExampleScatter() {
	shards := []string{"s1", "s2", "s3"}
	res, err := shard.Scatter(context.Background(), shards, func(ctx context.Context, s string) (int, error) {
		if s == "s2" {
			return 0, fmt.Errorf("timeout")
		}
		return len(s) * 10, nil
	}, shard.ScatterOptions[string]{Concurrency: 2, Policy: shard.Collect})
	for _, r := range res {
		fmt.Println(r.Shard, r.Value, r.Err)
	}
	fmt.Println(err)
	// Output:
	// s1 20 <nil>
	// s2 0 timeout
	// s3 20 <nil>
	// shard: shard s2: timeout
}

func ExampleScatterKeys() {
	router, _ := shard.NewHashRouter(shard.HashRouterOptions{Shards: 4})
	keys := strings.Fields("a b c d e f g h")
	res, _ := shard.ScatterKeys(context.Background(), keys,
		func(k string) (int, error) { return router.Shard(k), nil },
		func(ctx context.Context, s int, ks []string) (int, error) { return len(ks), nil }, // one MGET per shard
		shard.ScatterOptions[int]{})
	total := 0
	for _, r := range res {
		total += r.Value
	}
	fmt.Println(total, "keys in", len(res), "round trips")
	// Output: 8 keys in 4 round trips
}

func ExampleHasFailoverOrder() {
	ring, _ := shard.NewRing(shard.RingOptions[string]{})
	maglev, _ := shard.NewMaglev(shard.MaglevOptions[string]{})
	for _, p := range []shard.Placement[string]{ring, maglev} {
		_ = p.Add("a", "b", "c")
		two, _ := p.LocateN(nil, "session:42", 2)
		// Only a placement with failover order promises that two[1] takes over from two[0].
		fmt.Println(len(two), shard.HasFailoverOrder(p))
	}
	// Output:
	// 2 true
	// 2 false
}

func ExampleRangeRouter_RouteVersion() {
	r, _ := shard.NewRangeRouter([]shard.Range[string, string]{{NoStart: true, NoEnd: true, Shard: "db-1"}})
	s, v, _ := r.RouteVersion("tomato")
	fmt.Println(s, v)
	_, _ = r.Split("m", "db-1", "db-2")
	s, v, _ = r.RouteVersion("tomato")
	fmt.Println(s, v)
	// Output:
	// db-1 1
	// db-2 2
}
