package main

import (
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"
	jump "github.com/dgryski/go-jump"
	"github.com/golang/groupcache/consistenthash"
	"github.com/stathat/consistent"

	"github.com/girder-go/girder/shard"
)

func init() { register(shardRows) }

const shardKeyMask = 1<<16 - 1

// shardKeys are the lookup keys, many more than fit a cache line set so lookups are not all hits
// on one path through the ring.
var shardKeys = func() []string {
	keys := make([]string, shardKeyMask+1)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	return keys
}()

var shardNodes = func() []string {
	nodes := make([]string, 10)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("10.0.0.%d:6379", i+1)
	}
	return nodes
}()

// shardPlacement builds one of girder's placements over the 10 nodes.
func shardPlacement(kind string) shard.Placement[string] {
	var p shard.Placement[string]
	var err error
	switch kind {
	case "ring":
		p, err = shard.NewRing(shard.RingOptions[string]{})
	case "jump":
		p, err = shard.NewJump(shard.JumpOptions[string]{})
	case "maglev":
		p, err = shard.NewMaglev(shard.MaglevOptions[string]{})
	case "rendezvous":
		p, err = shard.NewRendezvous(shard.RendezvousOptions[string]{})
	case "bounded":
		p, err = shard.NewBounded(shard.BoundedOptions[string]{})
	}
	if err == nil {
		err = p.Add(shardNodes...)
	}
	if err != nil {
		panic(err)
	}
	return p
}

func shardLocate(kind string) func(*testing.B) {
	return func(b *testing.B) {
		p := shardPlacement(kind)
		i := 0
		for b.Loop() {
			p.Locate(shardKeys[i&shardKeyMask])
			i++
		}
	}
}

func shardGroupcache() *consistenthash.Map {
	m := consistenthash.New(160, nil)
	m.Add(shardNodes...)
	return m
}

func shardStathat() *consistent.Consistent {
	c := consistent.New()
	for _, n := range shardNodes {
		c.Add(n)
	}
	return c
}

func shardGroupcacheGet(b *testing.B) {
	m := shardGroupcache()
	i := 0
	for b.Loop() {
		m.Get(shardKeys[i&shardKeyMask])
		i++
	}
}

func shardStathatGet(b *testing.B) {
	c := shardStathat()
	i := 0
	for b.Loop() {
		c.Get(shardKeys[i&shardKeyMask])
		i++
	}
}

func shardLocateN(kind string) func(*testing.B) {
	return func(b *testing.B) {
		p := shardPlacement(kind)
		buf := make([]string, 0, 3)
		i := 0
		for b.Loop() {
			p.LocateN(buf[:0], shardKeys[i&shardKeyMask], 3)
			i++
		}
	}
}

func shardStathatGetN(b *testing.B) {
	c := shardStathat()
	i := 0
	for b.Loop() {
		c.GetN(shardKeys[i&shardKeyMask], 3)
		i++
	}
}

// shardDgryskiJump is go-jump with the same key hash girder uses, since go-jump takes a uint64.
func shardDgryskiJump(b *testing.B) {
	i := 0
	for b.Loop() {
		_ = shardNodes[jump.Hash(xxhash.Sum64String(shardKeys[i&shardKeyMask]), len(shardNodes))]
		i++
	}
}

func shardBuild(kind string) func(*testing.B) {
	return func(b *testing.B) {
		for b.Loop() {
			shardPlacement(kind)
		}
	}
}

// shardRingBuild160 builds a ring with groupcache's 160 points per node: the same work as the
// peer, where the default's 4096 points buy balance within 5 %.
func shardRingBuild160(b *testing.B) {
	for b.Loop() {
		r, err := shard.NewRing(shard.RingOptions[string]{VirtualNodes: 160})
		if err == nil {
			err = r.Add(shardNodes...)
		}
		if err != nil {
			panic(err)
		}
	}
}

func shardBoundedAcquire(b *testing.B) {
	bd, err := shard.NewBounded(shard.BoundedOptions[string]{})
	if err == nil {
		err = bd.Add(shardNodes...)
	}
	if err != nil {
		panic(err)
	}
	i := 0
	for b.Loop() {
		l, _ := bd.Acquire(shardKeys[i&shardKeyMask])
		l.Release()
		i++
	}
}

func shardHashRoute(b *testing.B) {
	r, err := shard.NewHashRouter(shard.HashRouterOptions{Shards: 10})
	if err != nil {
		panic(err)
	}
	i := 0
	for b.Loop() {
		r.Shard(shardKeys[i&shardKeyMask])
		i++
	}
}

func shardRangeRoute(b *testing.B) {
	ranges := []shard.Range[string, int]{{NoStart: true, End: "user:1", Shard: 0}}
	for i := 1; i < 9; i++ {
		ranges = append(ranges, shard.Range[string, int]{Start: fmt.Sprint("user:", i), End: fmt.Sprint("user:", i+1), Shard: i})
	}
	ranges = append(ranges, shard.Range[string, int]{Start: "user:9", NoEnd: true, Shard: 9})
	r, err := shard.NewRangeRouter(ranges)
	if err != nil {
		panic(err)
	}
	i := 0
	for b.Loop() {
		r.Route(shardKeys[i&shardKeyMask])
		i++
	}
}

func shardRows(*Env) []Row {
	const gc, st, dj = "groupcache consistenthash (160 vnodes)", "stathat/consistent v1.0.0 (20 vnodes)", "dgryski/go-jump"
	return []Row{
		{Package: "shard", Op: "ring Locate, 10 nodes", Girder: shardLocate("ring"), Peer: gc, PeerFn: shardGroupcacheGet},
		{Package: "shard", Op: "ring Locate, 10 nodes", Girder: shardLocate("ring"), Peer: st, PeerFn: shardStathatGet},
		{Package: "shard", Op: "ring LocateN 3, 10 nodes", Girder: shardLocateN("ring"), Peer: st + " GetN", PeerFn: shardStathatGetN},
		{Package: "shard", Op: "jump LocateN 3 (failover order), 10 nodes", Girder: shardLocateN("jump"), Peer: st + " GetN", PeerFn: shardStathatGetN},
		{Package: "shard", Op: "maglev LocateN 3, 10 nodes", Girder: shardLocateN("maglev"), Peer: st + " GetN", PeerFn: shardStathatGetN},
		{Package: "shard", Op: "jump Locate, 10 nodes", Girder: shardLocate("jump"), Peer: dj + " + xxhash", PeerFn: shardDgryskiJump},
		{Package: "shard", Op: "maglev Locate, 10 nodes", Girder: shardLocate("maglev"), Peer: gc, PeerFn: shardGroupcacheGet},
		{Package: "shard", Op: "rendezvous Locate, 10 nodes", Girder: shardLocate("rendezvous"), Peer: gc, PeerFn: shardGroupcacheGet},
		{Package: "shard", Op: "bounded Acquire+Release", Girder: shardBoundedAcquire},
		{Package: "shard", Op: "bounded Locate, 10 nodes", Girder: shardLocate("bounded"), Peer: gc, PeerFn: shardGroupcacheGet},
		{Package: "shard", Op: "hash router Shard", Girder: shardHashRoute},
		{Package: "shard", Op: "range router Route, 10 ranges", Girder: shardRangeRoute},
		{Package: "shard", Op: "ring build, 10 nodes × 4096 vnodes", Girder: shardBuild("ring"), Peer: gc, PeerFn: func(b *testing.B) {
			for b.Loop() {
				shardGroupcache()
			}
		}},
		{Package: "shard", Op: "ring build, 10 nodes × 160 vnodes", Girder: shardRingBuild160, Peer: gc, PeerFn: func(b *testing.B) {
			for b.Loop() {
				shardGroupcache()
			}
		}},
		{Package: "shard", Op: "ring build, 10 nodes × 4096 vnodes", Girder: shardBuild("ring"), Peer: st, PeerFn: func(b *testing.B) {
			for b.Loop() {
				shardStathat()
			}
		}},
		{Package: "shard", Op: "maglev build, 10 nodes", Girder: shardBuild("maglev")},
		{Package: "shard", Op: "jump build, 10 nodes", Girder: shardBuild("jump")},
		{Package: "shard", Op: "rendezvous build, 10 nodes", Girder: shardBuild("rendezvous")},
	}
}
