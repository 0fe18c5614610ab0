package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/girder-go/girder/shard"
)

func init() {
	register(chapter{
		name:  "shard",
		title: "consistent hashing spreads keys over nodes and moves few of them when nodes come and go",
		run:   tourShard,
	})
}

const tourShardKeys = 100_000

func tourShard(ctx context.Context, w io.Writer) error {
	keys := make([]string, tourShardKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("session:%d", i)
	}
	nodes := make([]string, 10)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("cache-%d", i)
	}

	fmt.Fprintf(w, "%d keys over 10 nodes, then an 11th node joins (ideal movement 1/11 = 9.1 %%) and leaves again:\n", len(keys))
	fmt.Fprintf(w, "  %-11s %9s %12s %24s %30s\n", "placement", "max/mean", "keys moved", "moved between old nodes", "its keys to LocateN's 2nd node")
	placements := []struct {
		name string
		p    shard.Placement[string]
		err  error
	}{{name: "ring"}, {name: "maglev"}, {name: "rendezvous"}, {name: "jump"}}
	placements[0].p, placements[0].err = shard.NewRing(shard.RingOptions[string]{})
	placements[1].p, placements[1].err = shard.NewMaglev(shard.MaglevOptions[string]{})
	placements[2].p, placements[2].err = shard.NewRendezvous(shard.RendezvousOptions[string]{})
	placements[3].p, placements[3].err = shard.NewJump(shard.JumpOptions[string]{})
	for _, pl := range placements {
		if pl.err != nil {
			return pl.err
		}
		if err := pl.p.Add(nodes...); err != nil {
			return err
		}
		before, ratio, err := tourShardOwners(pl.p, keys)
		if err != nil {
			return err
		}
		if err := pl.p.Add("cache-10"); err != nil {
			return err
		}
		after, _, err := tourShardOwners(pl.p, keys)
		if err != nil {
			return err
		}
		failover, err := tourShardFailover(pl.p, keys, "cache-10")
		if err != nil {
			return err
		}
		moved, stray := 0, 0
		for i := range before {
			if before[i] != after[i] {
				moved++
				if after[i] != "cache-10" {
					stray++
				}
			}
		}
		fmt.Fprintf(w, "  %-11s %9.3f %11.1f%% %24d %29.1f%%\n", pl.name, ratio, 100*float64(moved)/float64(len(keys)), stray, 100*failover)
	}
	fmt.Fprintln(w, "  (ring, rendezvous and jump promise LocateN's order as failover order: shard.HasFailoverOrder)")

	// Replicas: LocateN names distinct nodes, the owner first.
	ring := placements[0].p
	replicas, err := ring.LocateN(nil, "session:42", 3)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nsession:42 lives on %s, replicated to %s and %s\n", replicas[0], replicas[1], replicas[2])

	// Bounded loads: a hot key spills over once its owner holds ⌈1.25 × mean⌉ leases.
	b, err := shard.NewBounded(shard.BoundedOptions[string]{Epsilon: 0.25})
	if err != nil {
		return err
	}
	if err := b.Add(nodes[:4]...); err != nil {
		return err
	}
	for range 400 {
		if _, err := b.Acquire("hot-session"); err != nil {
			return err
		}
	}
	loads := make([]int64, 0, 4)
	for _, n := range b.Nodes() {
		loads = append(loads, b.Load(n))
	}
	fmt.Fprintf(w, "400 requests for one hot key over 4 nodes with bounded loads (ε = 0.25): %v, none above %d\n", loads, b.Limit(400))

	// Range routing: keys stay ordered, so a range scan touches few shards; Split makes a new version.
	rr, err := shard.NewRangeRouter([]shard.Range[string, string]{
		{NoStart: true, End: "m", Shard: "db-1"},
		{Start: "m", NoEnd: true, Shard: "db-2"},
	})
	if err != nil {
		return err
	}
	v, err := rr.Split("t", "db-2", "db-3")
	if err != nil {
		return err
	}
	tomato, routedWith, _ := rr.RouteVersion("tomato")
	fmt.Fprintf(w, "\nrange table v%d: %q → %s, routed with v%d", v, "tomato", tomato, routedWith)
	if _, err := shard.NewRangeRouter([]shard.Range[int, string]{{Start: 0, End: 10}, {Start: 5, End: 20}}); err != nil {
		fmt.Fprintf(w, "; a bad table is refused: %v\n", err)
	}

	// Scatter-gather: ask every node, two at a time, and keep the answers of those that reply.
	down := errors.New("connection refused")
	res, err := shard.Scatter(ctx, nodes[:5], func(ctx context.Context, node string) (int, error) {
		if node == "cache-3" {
			return 0, down
		}
		return len(node), nil
	}, shard.ScatterOptions[string]{Concurrency: 2, Policy: shard.Collect})
	failed := slices.IndexFunc(res, func(r shard.Result[string, int]) bool { return r.Err != nil })
	answered := len(res) - len(slices.DeleteFunc(slices.Clone(res), func(r shard.Result[string, int]) bool { return r.Err == nil }))
	fmt.Fprintf(w, "scatter over 5 nodes (collect, 2 at a time): %d answered, #%d failed: %v\n", answered, failed, err)
	return nil
}

// tourShardFailover removes node and returns the share of its keys that went to the second node
// LocateN named for them before.
func tourShardFailover(p shard.Placement[string], keys []string, node string) (float64, error) {
	var owned []string
	var second []string
	for _, k := range keys {
		two, err := p.LocateN(nil, k, 2)
		if err != nil {
			return 0, err
		}
		if two[0] == node {
			owned = append(owned, k)
			second = append(second, two[1])
		}
	}
	if err := p.Remove(node); err != nil {
		return 0, err
	}
	kept := 0
	for i, k := range owned {
		if n, err := p.Locate(k); err == nil && n == second[i] {
			kept++
		}
	}
	return float64(kept) / float64(max(1, len(owned))), nil
}

// tourShardOwners returns each key's node and the max/mean load.
func tourShardOwners(p shard.Placement[string], keys []string) ([]string, float64, error) {
	owners := make([]string, len(keys))
	count := map[string]int{}
	for i, k := range keys {
		n, err := p.Locate(k)
		if err != nil {
			return nil, 0, err
		}
		owners[i] = n
		count[n]++
	}
	most := 0
	for _, c := range count {
		most = max(most, c)
	}
	return owners, float64(most) * float64(len(count)) / float64(len(keys)), nil
}
