package shard

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// DefaultVirtualNodes is the number of points a node of weight 1 gets on a Ring. A node's share of
// the ring varies by about 1/√V around the mean, so it takes this many points to keep the most
// loaded of 10 nodes within 5 % of the mean whatever their names (TestRingBalanceAcrossNames).
// The price is memory (12 bytes a point plus an index of up to 8 bytes a point, about 750 KB for
// 10 nodes) and a rebuild linear in the points on every change.
const DefaultVirtualNodes = 4096

// maxPointsPerNode bounds a node's points so a huge weight cannot exhaust memory.
const maxPointsPerNode = 1 << 24

// RingOptions configures a Ring. The zero value is ready to use.
type RingOptions[N comparable] struct {
	// VirtualNodes is the number of points per node of weight 1; a node of weight w gets
	// round(w·VirtualNodes) points, at least one. Zero means DefaultVirtualNodes. Fewer points
	// build faster and use less memory but balance worse (max/mean ≈ 1 + 2/√VirtualNodes).
	VirtualNodes int
	// NodeKey names a node for hashing; two members may not share a name. Nil means the node
	// itself for strings, String() for a fmt.Stringer, fmt.Sprint otherwise.
	NodeKey func(N) string
}

// Validate reports every problem with the options.
func (o *RingOptions[N]) Validate() error {
	var p []string
	if o.VirtualNodes < 0 || o.VirtualNodes > 1<<20 {
		p = append(p, fmt.Sprintf("VirtualNodes %d is outside 0…%d", o.VirtualNodes, 1<<20))
	}
	return optionErrors(p)
}

// Ring is a consistent-hash ring with virtual nodes and weights (Karger et al.). A key belongs to
// the node of the first point at or after KeyHash(key), wrapping around. Adding a node takes keys
// only onto the new node; removing one moves only its keys; no key ever moves between two nodes
// that stayed. A node's points are XXH64(NodeKey + "#" + i) for i = 0, 1, …, so another program
// can rebuild the same ring.
//
// Every change builds a new immutable snapshot and publishes it with one atomic store, so lookups
// take no lock and allocate nothing. Changes are serialised by a mutex and cost O(points).
type Ring[N comparable] struct {
	vnodes int
	m      members[N]
	state  atomic.Pointer[ringState[N]]
}

// ringState is one immutable snapshot of a ring.
type ringState[N comparable] struct {
	nodes  []N
	keys   []string // keys[i] names nodes[i]
	hashes []uint64 // the points, ascending
	owners []uint32 // owners[j] indexes nodes for hashes[j]
	// table[b] is the first point whose top bits are ≥ b, so a lookup scans only the few points
	// of one bucket instead of binary-searching all of them.
	table []uint32
	shift uint
}

// NewRing returns an empty ring.
func NewRing[N comparable](opts RingOptions[N]) (*Ring[N], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	r := &Ring[N]{vnodes: cmp.Or(opts.VirtualNodes, DefaultVirtualNodes), m: members[N]{nodeKey: opts.NodeKey}}
	r.state.Store(&ringState[N]{})
	return r, nil
}

// Add adds nodes with weight 1.
func (r *Ring[N]) Add(nodes ...N) error { return r.AddWeighted(1, nodes...) }

// AddWeighted adds nodes that each get weight times the points, and so the keys, of a node of
// weight 1.
func (r *Ring[N]) AddWeighted(weight float64, nodes ...N) error {
	if weight*float64(r.vnodes) > maxPointsPerNode {
		return fmt.Errorf("%w: weight %v gives a node more than %d points", ErrBadWeight, weight, maxPointsPerNode)
	}
	return r.m.add(nodes, weight, nil, r.publish)
}

// Remove removes nodes; their keys go to the nodes that follow their points.
func (r *Ring[N]) Remove(nodes ...N) error {
	return r.m.remove(nodes, r.publish)
}

// Nodes returns the members in the order they were added.
func (r *Ring[N]) Nodes() []N { return slices.Clone(r.state.Load().nodes) }

// Len returns the number of members.
func (r *Ring[N]) Len() int { return len(r.state.Load().nodes) }

// Locate returns the node that owns key.
func (r *Ring[N]) Locate(key string) (N, error) {
	s := r.state.Load()
	if len(s.hashes) == 0 {
		var zero N
		return zero, ErrNoNodes
	}
	return s.nodes[s.owners[s.search(xxhash.Sum64String(key))]], nil
}

// LocateN appends up to n distinct nodes for key to dst: the owner, then the owners of the
// following points that are not already in the list. This is the failover order.
func (r *Ring[N]) LocateN(dst []N, key string, n int) ([]N, error) {
	s := r.state.Load()
	if len(s.hashes) == 0 {
		return dst, ErrNoNodes
	}
	n = min(n, len(s.nodes))
	var small [16]uint32
	picked := small[:0]
	for j := s.search(xxhash.Sum64String(key)); len(picked) < n; j++ {
		if j == len(s.hashes) {
			j = 0
		}
		if o := s.owners[j]; !slices.Contains(picked, o) {
			picked = append(picked, o)
			dst = append(dst, s.nodes[o])
		}
	}
	return dst, nil
}

// FailoverOrder returns true: removing nodes hands each of their keys to the next point of
// another node, which is the next node of LocateN's list.
func (r *Ring[N]) FailoverOrder() bool { return true }

// search returns the index of the first point at or after h, wrapping to 0.
func (s *ringState[N]) search(h uint64) int {
	b := h >> s.shift
	i, end := int(s.table[b]), int(s.table[b+1])
	for i < end && s.hashes[i] < h {
		i++
	}
	if i == len(s.hashes) {
		return 0
	}
	return i
}

// point is a virtual node while a snapshot is built.
type point struct {
	hash  uint64
	owner uint32
}

// publish builds the snapshot of list and makes it current. Caller holds r.m.mu.
func (r *Ring[N]) publish(list []member[N]) {
	s := &ringState[N]{nodes: nodesOf(list), keys: make([]string, len(list))}
	counts := make([]int, len(list))
	total := 0
	for i, x := range list {
		counts[i] = max(1, int(math.Round(x.weight*float64(r.vnodes))))
		total += counts[i]
	}
	pts := make([]point, 0, total)
	var buf []byte
	for i, x := range list {
		s.keys[i] = x.key
		count := counts[i]
		buf = append(buf[:0], x.key...)
		buf = append(buf, '#')
		base := len(buf)
		for v := range count {
			buf = strconv.AppendInt(buf[:base], int64(v), 10)
			pts = append(pts, point{hash: xxhash.Sum64(buf), owner: uint32(i)})
		}
	}
	pts = sortPoints(pts)
	// Equal hashes are ordered by node key, not by member index, so which node wins a tie does
	// not depend on the order nodes joined.
	for j := 1; j < len(pts); j++ {
		if pts[j].hash == pts[j-1].hash {
			k := j + 1
			for k < len(pts) && pts[k].hash == pts[j].hash {
				k++
			}
			slices.SortFunc(pts[j-1:k], func(a, b point) int { return cmp.Compare(s.keys[a.owner], s.keys[b.owner]) })
			j = k
		}
	}
	s.hashes = make([]uint64, len(pts))
	s.owners = make([]uint32, len(pts))
	for j, p := range pts {
		s.hashes[j], s.owners[j] = p.hash, p.owner
	}
	s.buildTable()
	r.m.list = list
	r.state.Store(s)
}

// sortPoints sorts points by hash with a least-significant-digit radix sort, 11 bits a pass so
// the counters stay in the L1 cache: several times faster than a comparison sort for the tens of
// thousands of points of a ring. It is stable, so equal hashes keep member order.
func sortPoints(pts []point) []point {
	if len(pts) < 256 {
		slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.hash, b.hash) })
		return pts
	}
	const digit = 11
	tmp := make([]point, len(pts))
	var count [1 << digit]int
	for shift := uint(0); shift < 64; shift += digit {
		clear(count[:])
		for _, p := range pts {
			count[p.hash>>shift&(1<<digit-1)]++
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, p := range pts {
			d := p.hash >> shift & (1<<digit - 1)
			tmp[count[d]] = p
			count[d]++
		}
		pts, tmp = tmp, pts
	}
	return pts
}

// buildTable indexes the points by their top bits, about one point per bucket.
func (s *ringState[N]) buildTable() {
	tbits := min(max(bits.Len(uint(len(s.hashes))), 1), 24)
	s.shift = uint(64 - tbits)
	s.table = make([]uint32, 1<<tbits+1)
	j := 0
	for b := range s.table {
		for j < len(s.hashes) && s.hashes[j]>>s.shift < uint64(b) {
			j++
		}
		s.table[b] = uint32(j)
	}
}
