package shard

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// Placement maps keys to nodes. Ring, Jump, Maglev, Rendezvous and Bounded implement it, and one
// contract test suite runs against all of them. Every method is safe for concurrent use; Locate
// and LocateN never take a lock and never see a membership change half done.
type Placement[N comparable] interface {
	// Locate returns the node that owns key, or ErrNoNodes.
	Locate(key string) (N, error)
	// LocateN appends to dst up to n distinct nodes for key, the owner first: the nodes to hold
	// its replicas. It appends fewer when there are fewer nodes, and allocates nothing when dst
	// has room and n ≤ 16. Whether the nodes after the owner are also the ones that take the key
	// over when the owner goes is a separate promise; see Failover.
	LocateN(dst []N, key string, n int) ([]N, error)
	// Add adds nodes with weight 1. Nothing is added when any of them is invalid.
	Add(nodes ...N) error
	// Remove removes nodes. Nothing is removed when any of them is not a member.
	Remove(nodes ...N) error
	// Nodes returns the members, in the order the placement keeps them.
	Nodes() []N
}

// Failover is implemented by placements whose LocateN order is also the failover order. Ring,
// Rendezvous and Jump implement it; Maglev and Bounded do not (Maglev rebuilds its table on a
// change, so a lost owner's keys scatter over the survivors; Bounded moves keys with load).
type Failover interface {
	// FailoverOrder reports whether the nodes LocateN returns after the owner take the key over,
	// in order, when those before them are gone: with the first k of them removed, the key
	// belongs to the (k+1)th. For Jump, which can only lose its highest-numbered nodes, this
	// holds for every removal it allows.
	FailoverOrder() bool
}

// HasFailoverOrder reports whether p promises that LocateN's order is the failover order (see
// Failover). Use it before sending a key to LocateN's second node when its owner fails.
func HasFailoverOrder[N comparable](p Placement[N]) bool {
	f, ok := p.(Failover)
	return ok && f.FailoverOrder()
}

var (
	_ Placement[string] = (*Ring[string])(nil)
	_ Placement[string] = (*Jump[string])(nil)
	_ Placement[string] = (*Maglev[string])(nil)
	_ Placement[string] = (*Rendezvous[string])(nil)
	_ Placement[string] = (*Bounded[string])(nil)
	_ Failover          = (*Ring[string])(nil)
	_ Failover          = (*Jump[string])(nil)
	_ Failover          = (*Rendezvous[string])(nil)
)

// Sentinel errors. Errors returned by this package wrap them; match with errors.Is.
var (
	// ErrNoNodes: a lookup on a placement with no members.
	ErrNoNodes = errors.New("shard: no nodes")
	// ErrDuplicateNode: a node, or another node with the same NodeKey, is already a member.
	ErrDuplicateNode = errors.New("shard: duplicate node")
	// ErrUnknownNode: Remove of a node that is not a member.
	ErrUnknownNode = errors.New("shard: unknown node")
	// ErrBadWeight: a weight that is not a finite number above zero.
	ErrBadWeight = errors.New("shard: weight must be a finite number > 0")
	// ErrNotLast: Jump can only remove its highest-numbered nodes.
	ErrNotLast = errors.New("shard: jump hash can only remove the last nodes")
	// ErrNoRange: a key that no range of a RangeRouter covers.
	ErrNoRange = errors.New("shard: key outside every range")
	// ErrBadRanges: a range table with gaps, overlaps, empty or unsorted ranges.
	ErrBadRanges = errors.New("shard: invalid ranges")
	// ErrBadOptions: options that fail validation.
	ErrBadOptions = errors.New("shard: invalid options")
)

// NodeError reports a membership change refused for one node.
type NodeError struct {
	Node string // the node's key (see NodeKey)
	Err  error  // ErrDuplicateNode, ErrUnknownNode, ErrBadWeight or ErrNotLast
}

func (e *NodeError) Error() string { return fmt.Sprintf("%v: %q", e.Err, e.Node) }
func (e *NodeError) Unwrap() error { return e.Err }

// KeyHash is the hash every placement and the HashRouter apply to keys: 64-bit xxHash (XXH64) of
// the key's bytes with seed 0, as github.com/cespare/xxhash/v2 and every other XXH64 library
// compute it.
func KeyHash(key string) uint64 { return xxhash.Sum64String(key) }

// defaultNodeKey names a node for hashing when the options give no NodeKey: a string is itself,
// a fmt.Stringer its String, anything else fmt.Sprint.
func defaultNodeKey[N comparable](n N) string {
	switch v := any(n).(type) {
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(n)
}

// mix64 is the SplitMix64 finalizer: a cheap bijection whose outputs look independent even for
// inputs that differ in one bit. It derives per-node and per-probe hashes from a key's hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// member is a node as the placements keep it.
type member[N comparable] struct {
	node   N
	key    string
	weight float64
}

// members is the membership list shared by the placements. Changes are serialised by mu; each
// produces a new slice so published snapshots stay intact.
type members[N comparable] struct {
	mu      sync.Mutex
	nodeKey func(N) string
	list    []member[N]
}

// add appends nodes with weight and hands the new list to publish, under mu. check, when not
// nil, may refuse the new list; then nothing changes.
func (m *members[N]) add(nodes []N, weight float64, check func([]member[N]) error, publish func([]member[N])) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	list, err := m.added(nodes, weight)
	if err == nil && check != nil {
		err = check(list)
	}
	if err != nil {
		return err
	}
	publish(list)
	return nil
}

// remove drops nodes and hands the new list to publish, under mu.
func (m *members[N]) remove(nodes []N, publish func([]member[N])) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	list, err := m.removed(nodes)
	if err != nil {
		return err
	}
	publish(list)
	return nil
}

func (m *members[N]) keyOf(n N) string {
	if m.nodeKey != nil {
		return m.nodeKey(n)
	}
	return defaultNodeKey(n)
}

// added returns the list with nodes appended, or an error naming every node refused.
func (m *members[N]) added(nodes []N, weight float64) ([]member[N], error) {
	var errs []error
	if math.IsNaN(weight) || math.IsInf(weight, 0) || weight <= 0 {
		errs = append(errs, fmt.Errorf("%w: %v", ErrBadWeight, weight))
	}
	seen := make(map[string]bool, len(m.list)+len(nodes))
	for _, x := range m.list {
		seen[x.key] = true
	}
	out := slices.Clip(m.list)
	for _, n := range nodes {
		k := m.keyOf(n)
		if seen[k] {
			errs = append(errs, &NodeError{Node: k, Err: ErrDuplicateNode})
			continue
		}
		seen[k] = true
		out = append(out, member[N]{node: n, key: k, weight: weight})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// removed returns the list without nodes, or an error naming every node that is not a member.
func (m *members[N]) removed(nodes []N) ([]member[N], error) {
	drop := make(map[string]bool, len(nodes))
	var errs []error
	for _, n := range nodes {
		k := m.keyOf(n)
		if !slices.ContainsFunc(m.list, func(x member[N]) bool { return x.key == k }) || drop[k] {
			errs = append(errs, &NodeError{Node: k, Err: ErrUnknownNode})
			continue
		}
		drop[k] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]member[N], 0, len(m.list))
	for _, x := range m.list {
		if !drop[x.key] {
			out = append(out, x)
		}
	}
	return out, nil
}

func nodesOf[N comparable](list []member[N]) []N {
	out := make([]N, len(list))
	for i, x := range list {
		out[i] = x.node
	}
	return out
}

// optionErrors reports every problem, each wrapping ErrBadOptions.
func optionErrors(problems []string) error {
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = fmt.Errorf("%w: %s", ErrBadOptions, p)
	}
	return errors.Join(errs...)
}
