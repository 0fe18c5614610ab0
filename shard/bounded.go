package shard

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// DefaultEpsilon is the load slack of a Bounded placement when its options give none: no node
// holds more than ⌈1.25·mean⌉ leases, the figure Vimeo and HAProxy run with.
const DefaultEpsilon = 0.25

// BoundedOptions configures a Bounded placement. The zero value is ready to use.
type BoundedOptions[N comparable] struct {
	// Epsilon bounds every node's load to ⌈(1+Epsilon)·m/n⌉ for m leases held over n nodes.
	// Smaller values balance tighter and move more keys away from their ring owner. Zero means
	// DefaultEpsilon.
	Epsilon float64
	// Ring configures the ring the placement walks.
	Ring RingOptions[N]
}

// Validate reports every problem with the options.
func (o *BoundedOptions[N]) Validate() error {
	var p []string
	if math.IsNaN(o.Epsilon) || math.IsInf(o.Epsilon, 0) || o.Epsilon < 0 {
		p = append(p, fmt.Sprintf("Epsilon %v is not a finite number ≥ 0", o.Epsilon))
	}
	return errors.Join(optionErrors(p), o.Ring.Validate())
}

// Bounded is consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, 2018):
// a key goes to the first node clockwise on a Ring whose load is below ⌈(1+ε)·m/n⌉, where m counts
// the leases currently held, the new one included. A key whose owner is full therefore spills to
// the next node, and comes back when the owner has room again.
//
// Load is what the caller says it is: Acquire takes a lease and Lease.Release gives it back, so
// leases can count open connections, in-flight requests or cached keys. Acquire takes no lock; the
// bound holds exactly for sequential callers and to within the number of concurrent Acquire calls
// otherwise.
//
// Bounded is a Placement: Locate and LocateN name the nodes a lease would go to now, which with
// no leases held are the Ring's. Its LocateN order is not a failover order (see Failover).
type Bounded[N comparable] struct {
	eps   float64
	ring  *Ring[N]
	mu    sync.Mutex // serialises membership changes
	loads map[string]*atomic.Int64
	total atomic.Int64
	state atomic.Pointer[boundedState[N]]
}

type boundedState[N comparable] struct {
	ring  *ringState[N]
	loads []*atomic.Int64 // loads[i] is ring.nodes[i]'s
}

// Lease is one unit of load on Node, taken by Bounded.Acquire. Release it exactly once.
type Lease[N comparable] struct {
	Node  N
	load  *atomic.Int64
	total *atomic.Int64
}

// Release gives the load back. Releasing the zero Lease does nothing.
func (l Lease[N]) Release() {
	if l.load == nil {
		return
	}
	l.load.Add(-1)
	l.total.Add(-1)
}

// NewBounded returns an empty bounded-load placement.
func NewBounded[N comparable](opts BoundedOptions[N]) (*Bounded[N], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ring, err := NewRing(opts.Ring)
	if err != nil {
		return nil, err
	}
	eps := opts.Epsilon
	if eps == 0 {
		eps = DefaultEpsilon
	}
	b := &Bounded[N]{eps: eps, ring: ring, loads: map[string]*atomic.Int64{}}
	b.state.Store(&boundedState[N]{ring: ring.state.Load()})
	return b, nil
}

// Add adds nodes with weight 1.
func (b *Bounded[N]) Add(nodes ...N) error {
	return b.change(func() error { return b.ring.Add(nodes...) })
}

// Remove removes nodes. Leases held on them stay valid until released.
func (b *Bounded[N]) Remove(nodes ...N) error {
	return b.change(func() error { return b.ring.Remove(nodes...) })
}

// Nodes returns the members in the order they were added.
func (b *Bounded[N]) Nodes() []N { return b.ring.Nodes() }

// Load returns the leases held on node (0 for a stranger).
func (b *Bounded[N]) Load(node N) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.loads[b.ring.m.keyOf(node)]; c != nil {
		return c.Load()
	}
	return 0
}

// Limit returns the most leases a node may hold while m leases are held in all.
func (b *Bounded[N]) Limit(m int64) int64 {
	n := len(b.state.Load().loads)
	if n == 0 {
		return 0
	}
	return b.limit(m, n)
}

func (b *Bounded[N]) change(f func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := f(); err != nil {
		return err
	}
	rs := b.ring.state.Load()
	st := &boundedState[N]{ring: rs, loads: make([]*atomic.Int64, len(rs.keys))}
	for i, k := range rs.keys {
		c := b.loads[k]
		if c == nil {
			c = new(atomic.Int64)
			b.loads[k] = c
		}
		st.loads[i] = c
	}
	for k := range b.loads {
		if !slices.Contains(rs.keys, k) {
			delete(b.loads, k)
		}
	}
	b.state.Store(st)
	return nil
}

// Locate returns the node a lease for key would go to now, without taking one: the first node
// clockwise from the key whose load is below the bound with one more lease held. With no leases
// held, or light load, that is the key's owner on the ring. Like Acquire it takes no lock and
// allocates nothing; under concurrent Acquire calls the answer is a snapshot.
func (b *Bounded[N]) Locate(key string) (N, error) {
	st := b.state.Load()
	rs := st.ring
	if len(rs.hashes) == 0 {
		var zero N
		return zero, ErrNoNodes
	}
	start := rs.search(xxhash.Sum64String(key))
	limit := b.limit(b.total.Load()+1, len(st.loads))
	for step, j := 0, start; step < len(rs.hashes); step++ {
		if o := rs.owners[j]; st.loads[o].Load() < limit {
			return rs.nodes[o], nil
		}
		if j++; j == len(rs.hashes) {
			j = 0
		}
	}
	return rs.nodes[rs.owners[start]], nil
}

// LocateN appends up to n distinct nodes for key to dst: the nodes clockwise from the key whose
// load is below the bound, in ring order, then those at the bound. With no leases held it is the
// Ring's LocateN. It is not a failover order: which nodes have room changes with every lease, and
// the bound changes with the number of nodes.
func (b *Bounded[N]) LocateN(dst []N, key string, n int) ([]N, error) {
	st := b.state.Load()
	rs := st.ring
	if len(rs.hashes) == 0 {
		return dst, ErrNoNodes
	}
	n = min(n, len(rs.nodes))
	start := rs.search(xxhash.Sum64String(key))
	limit := b.limit(b.total.Load()+1, len(st.loads))
	var small [16]uint32
	picked := small[:0]
	// The first pass takes the nodes with room, the second the rest.
	for pass := range 2 {
		for step, j := 0, start; step < len(rs.hashes) && len(picked) < n; step++ {
			o := rs.owners[j]
			if (pass == 1 || st.loads[o].Load() < limit) && !slices.Contains(picked, o) {
				picked = append(picked, o)
				dst = append(dst, rs.nodes[o])
			}
			if j++; j == len(rs.hashes) {
				j = 0
			}
		}
	}
	return dst, nil
}

// limit is the bound on one node's load while m leases are held over n nodes.
func (b *Bounded[N]) limit(m int64, n int) int64 {
	return int64(math.Ceil((1 + b.eps) * float64(m) / float64(n)))
}

// Acquire places one unit of load for key and returns its lease: on the node Locate would name,
// the key's ring owner unless that owner is at the bound.
func (b *Bounded[N]) Acquire(key string) (Lease[N], error) {
	st := b.state.Load()
	rs := st.ring
	if len(rs.hashes) == 0 {
		return Lease[N]{}, ErrNoNodes
	}
	start := rs.search(xxhash.Sum64String(key))
	m := b.total.Add(1)
	for {
		limit := b.limit(m, len(st.loads))
		for step, j := 0, start; step < len(rs.hashes); step++ {
			c := st.loads[rs.owners[j]]
			for l := c.Load(); l < limit; l = c.Load() {
				if c.CompareAndSwap(l, l+1) {
					return Lease[N]{Node: rs.nodes[rs.owners[j]], load: c, total: &b.total}, nil
				}
			}
			if j++; j == len(rs.hashes) {
				j = 0
			}
		}
		// Every node was full for the total seen at the start: concurrent callers took leases
		// since, so the bound has grown with them.
		m = max(b.total.Load(), m+1)
	}
}
