package shard

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// JumpOptions configures a Jump placement. The zero value is ready to use.
type JumpOptions[N comparable] struct {
	// NodeKey names a node so duplicates can be refused. Nil means the node itself for strings,
	// String() for a fmt.Stringer, fmt.Sprint otherwise.
	NodeKey func(N) string
}

// Jump is jump consistent hashing (Lamping and Veach, 2014): nodes are numbered 0…n-1 in the order
// they were added and a key goes to bucket JumpHash(KeyHash(key), n). It needs no memory beyond
// the node list, balances perfectly and moves the ideal 1/(n+1) of the keys when a node is added,
// but it has no weights and can only remove the highest-numbered nodes (Remove of any other node
// returns ErrNotLast): it suits shards that are renumbered by replication, not servers that fail
// at random.
type Jump[N comparable] struct {
	mu    sync.Mutex
	m     members[N]
	nodes atomic.Pointer[[]N]
}

// NewJump returns an empty jump-hash placement.
func NewJump[N comparable](opts JumpOptions[N]) (*Jump[N], error) {
	j := &Jump[N]{m: members[N]{nodeKey: opts.NodeKey}}
	j.nodes.Store(new([]N))
	return j, nil
}

// JumpHash returns the bucket in [0, n) of a 64-bit key, exactly as in Lamping and Veach's paper
// (and github.com/dgryski/go-jump). It returns -1 when n ≤ 0.
func JumpHash(key uint64, n int) int {
	b, j := int64(-1), int64(0)
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// Add appends nodes; they are numbered after the existing ones.
func (j *Jump[N]) Add(nodes ...N) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	list, err := j.m.added(nodes, 1)
	if err != nil {
		return err
	}
	j.m.list = list
	ns := nodesOf(list)
	j.nodes.Store(&ns)
	return nil
}

// Remove removes nodes that are, together, the highest-numbered ones; otherwise it returns an
// error wrapping ErrNotLast and removes nothing.
func (j *Jump[N]) Remove(nodes ...N) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	list, err := j.m.removed(nodes)
	if err != nil {
		return err
	}
	for i, x := range list {
		if x.key != j.m.list[i].key {
			return &NodeError{Node: j.m.list[i].key, Err: ErrNotLast}
		}
	}
	j.m.list = list
	ns := nodesOf(list)
	j.nodes.Store(&ns)
	return nil
}

// FailoverOrder returns true: when Remove takes the highest-numbered nodes away, each key goes to
// the first node of its LocateN list that is left.
func (j *Jump[N]) FailoverOrder() bool { return true }

// Nodes returns the members in bucket order.
func (j *Jump[N]) Nodes() []N { return slices.Clone(*j.nodes.Load()) }

// Locate returns the node that owns key.
func (j *Jump[N]) Locate(key string) (N, error) {
	ns := *j.nodes.Load()
	if len(ns) == 0 {
		var zero N
		return zero, ErrNoNodes
	}
	return ns[JumpHash(xxhash.Sum64String(key), len(ns))], nil
}

// LocateN appends up to n distinct nodes for key to dst, in failover order. The first is
// Locate's. The next are the buckets the key falls back to as the highest-numbered nodes are
// removed: the bucket of JumpHash(h, b) for the owner b, then of JumpHash(h, b') for that bucket
// b', and so on down to bucket 0, which is what Remove of the last nodes does to the key. The
// chain is short (about ln n nodes); the rest, which no removal Jump allows can ever make the
// key's owner, come from jump hashes of derived keys.
//
// The chain has a cost: node i is the second node of (H(n−1) − H(i))/n of the keys, plus
// 1/(n(n−1)) for i > 0 (H the harmonic numbers), so with 10 nodes node 0 is the second node of
// 28 % of them rather than 10 %, node 9 of 1 %. Replicas placed with LocateN lean on the
// lowest-numbered nodes.
func (j *Jump[N]) LocateN(dst []N, key string, n int) ([]N, error) {
	ns := *j.nodes.Load()
	if len(ns) == 0 {
		return dst, ErrNoNodes
	}
	n = min(n, len(ns))
	if n <= 0 {
		return dst, nil
	}
	h := xxhash.Sum64String(key)
	var small [16]int
	picked := small[:0]
	for b := JumpHash(h, len(ns)); len(picked) < n; b = JumpHash(h, b) {
		picked = append(picked, b)
		dst = append(dst, ns[b])
		if b == 0 {
			break
		}
	}
	for probe := uint64(1); len(picked) < n; probe++ {
		b := JumpHash(mix64(h+probe), len(ns))
		// Past 4n probes the rest are taken in bucket order, so the loop always ends.
		if probe > uint64(4*len(ns)) {
			b = int(probe % uint64(len(ns)))
		}
		if !slices.Contains(picked, b) {
			picked = append(picked, b)
			dst = append(dst, ns[b])
		}
	}
	return dst, nil
}
