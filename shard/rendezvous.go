package shard

import (
	"math"
	"slices"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// RendezvousOptions configures a Rendezvous placement. The zero value is ready to use.
type RendezvousOptions[N comparable] struct {
	// NodeKey names a node for hashing; two members may not share a name. Nil means the node
	// itself for strings, String() for a fmt.Stringer, fmt.Sprint otherwise.
	NodeKey func(N) string
}

// Rendezvous is highest-random-weight hashing (Thaler and Ravishankar, 1998): every node scores the
// key and the highest score wins; with weights the score is -w/ln(u) for a uniform u in (0, 1)
// (Schindelhauer and Schomaker), which gives each node a share proportional to its weight. It
// moves the minimum number of keys on any change, needs no table, and LocateN's order is the
// failover order, but a lookup costs O(nodes): prefer it for tens of nodes, not thousands.
type Rendezvous[N comparable] struct {
	m     members[N]
	state atomic.Pointer[rendezvousState[N]]
}

type rendezvousState[N comparable] struct {
	nodes    []N
	seeds    []uint64  // seeds[i] = KeyHash(NodeKey(nodes[i]))
	weights  []float64 // weights[i] is nodes[i]'s; weighted is false when all are 1
	weighted bool
}

// NewRendezvous returns an empty rendezvous placement.
func NewRendezvous[N comparable](opts RendezvousOptions[N]) (*Rendezvous[N], error) {
	r := &Rendezvous[N]{m: members[N]{nodeKey: opts.NodeKey}}
	r.state.Store(&rendezvousState[N]{})
	return r, nil
}

// Add adds nodes with weight 1.
func (r *Rendezvous[N]) Add(nodes ...N) error { return r.AddWeighted(1, nodes...) }

// AddWeighted adds nodes that each win weight times the keys of a node of weight 1.
func (r *Rendezvous[N]) AddWeighted(weight float64, nodes ...N) error {
	return r.m.add(nodes, weight, nil, r.publish)
}

// Remove removes nodes.
func (r *Rendezvous[N]) Remove(nodes ...N) error {
	return r.m.remove(nodes, r.publish)
}

// Nodes returns the members in the order they were added.
func (r *Rendezvous[N]) Nodes() []N { return slices.Clone(r.state.Load().nodes) }

func (r *Rendezvous[N]) publish(list []member[N]) {
	s := &rendezvousState[N]{nodes: nodesOf(list), seeds: make([]uint64, len(list)), weights: make([]float64, len(list))}
	for i, x := range list {
		s.seeds[i] = xxhash.Sum64String(x.key)
		s.weights[i] = x.weight
		s.weighted = s.weighted || x.weight != 1
	}
	r.m.list = list
	r.state.Store(s)
}

// score is node i's bid for a key hash. Scores of different nodes compare; ties are broken by the
// node's seed so the winner does not depend on the order nodes joined.
func (s *rendezvousState[N]) score(h uint64, i int) float64 {
	x := mix64(h ^ s.seeds[i])
	if !s.weighted {
		return float64(x >> 11)
	}
	u := (float64(x>>11) + 0.5) / (1 << 53) // uniform in (0, 1)
	return -s.weights[i] / math.Log(u)
}

// better reports whether node i's score a beats node j's score b.
func (s *rendezvousState[N]) better(a float64, i int, b float64, j int) bool {
	return a > b || (a == b && s.seeds[i] > s.seeds[j])
}

// Locate returns the node that owns key.
func (r *Rendezvous[N]) Locate(key string) (N, error) {
	s := r.state.Load()
	if len(s.nodes) == 0 {
		var zero N
		return zero, ErrNoNodes
	}
	h := xxhash.Sum64String(key)
	best, bestScore := 0, s.score(h, 0)
	for i := 1; i < len(s.nodes); i++ {
		if sc := s.score(h, i); s.better(sc, i, bestScore, best) {
			best, bestScore = i, sc
		}
	}
	return s.nodes[best], nil
}

// FailoverOrder returns true: without its best-scoring nodes, a key goes to the best of the rest.
func (r *Rendezvous[N]) FailoverOrder() bool { return true }

// LocateN appends to dst the n nodes with the highest scores for key, best first: the owner, then
// the node that would own the key without it, and so on.
func (r *Rendezvous[N]) LocateN(dst []N, key string, n int) ([]N, error) {
	s := r.state.Load()
	if len(s.nodes) == 0 {
		return dst, ErrNoNodes
	}
	h := xxhash.Sum64String(key)
	// n passes, each taking the best node below the previous pick: O(n·nodes) hashing and no
	// allocation.
	prev, prevScore := -1, math.Inf(1)
	for range min(n, len(s.nodes)) {
		best, bestScore := -1, 0.0
		for i := range s.nodes {
			sc := s.score(h, i)
			if prev >= 0 && !s.better(prevScore, prev, sc, i) {
				continue
			}
			if best < 0 || s.better(sc, i, bestScore, best) {
				best, bestScore = i, sc
			}
		}
		dst = append(dst, s.nodes[best])
		prev, prevScore = best, bestScore
	}
	return dst, nil
}
