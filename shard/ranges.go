package shard

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Range assigns the keys from Start (inclusive) to End (exclusive) to Shard, as Vitess key ranges
// do. NoStart and NoEnd make a range unbounded below or above, so a table can cover every key.
type Range[K, S any] struct {
	Start   K
	End     K
	NoStart bool // the range starts below every key; Start is ignored
	NoEnd   bool // the range ends above every key; End is ignored
	Shard   S
}

// RangeTable is one immutable version of a RangeRouter's ranges. It keeps routing as it did
// after the router has moved on to a newer table.
type RangeTable[K, S any] struct {
	version uint64
	ranges  []Range[K, S]
	compare func(a, b K) int
}

// Version counts the tables a router has had: 1 for the first, one more for each change.
func (t *RangeTable[K, S]) Version() uint64 { return t.version }

// Ranges returns a copy of the table's ranges, in key order.
func (t *RangeTable[K, S]) Ranges() []Range[K, S] { return slices.Clone(t.ranges) }

// Route returns the shard of the range of this table holding key, or ErrNoRange. It is a binary
// search over the ranges, with no lock and no allocation.
func (t *RangeTable[K, S]) Route(key K) (S, error) {
	if i := t.find(key); i >= 0 {
		return t.ranges[i].Shard, nil
	}
	var zero S
	return zero, ErrNoRange
}

// find returns the index of the range holding key, or -1.
func (t *RangeTable[K, S]) find(key K) int {
	rs := t.ranges
	// The first range that starts after key; the one before it is the candidate.
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !rs[m].NoStart && t.compare(rs[m].Start, key) > 0 {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if i := lo - 1; i >= 0 && (rs[i].NoEnd || t.compare(key, rs[i].End) < 0) {
		return i
	}
	return -1
}

// RangeRouter routes ordered keys to shards through a table of contiguous ranges. Lookups take no
// lock: Split, Merge and Replace build a new table with the next version and publish it with one
// atomic store, so a lookup sees the old table or the new one, never a mix.
type RangeRouter[K, S any] struct {
	compare func(a, b K) int
	clone   func(K) K // copies a key the router keeps (byte strings), nil otherwise
	mu      sync.Mutex
	table   atomic.Pointer[RangeTable[K, S]]
}

// NewRangeRouter returns a router over keys of an ordered type. ranges must be sorted, contiguous
// (each End is the next Start) and non-empty; every problem is reported, wrapped in ErrBadRanges.
func NewRangeRouter[K cmp.Ordered, S any](ranges []Range[K, S]) (*RangeRouter[K, S], error) {
	return NewRangeRouterFunc(cmp.Compare[K], ranges)
}

// NewBytesRangeRouter returns a router over byte-string keys ordered by bytes.Compare, as Vitess
// keyspace IDs are. The router keeps copies of the boundaries.
func NewBytesRangeRouter[S any](ranges []Range[[]byte, S]) (*RangeRouter[[]byte, S], error) {
	return newRangeRouter(bytes.Compare, bytes.Clone, ranges)
}

// NewRangeRouterFunc returns a router over keys ordered by compare, which returns a negative
// number, zero or a positive number as a < b, a == b or a > b.
func NewRangeRouterFunc[K, S any](compare func(a, b K) int, ranges []Range[K, S]) (*RangeRouter[K, S], error) {
	if compare == nil {
		return nil, fmt.Errorf("%w: nil compare function", ErrBadOptions)
	}
	return newRangeRouter(compare, nil, ranges)
}

func newRangeRouter[K, S any](compare func(a, b K) int, clone func(K) K, ranges []Range[K, S]) (*RangeRouter[K, S], error) {
	r := &RangeRouter[K, S]{compare: compare, clone: clone}
	if _, err := r.Replace(ranges); err != nil {
		return nil, err
	}
	return r, nil
}

// Table returns the current table.
func (r *RangeRouter[K, S]) Table() *RangeTable[K, S] { return r.table.Load() }

// Route returns the shard of the range holding key in the current table, or ErrNoRange.
func (r *RangeRouter[K, S]) Route(key K) (S, error) { return r.table.Load().Route(key) }

// RouteVersion is Route that also returns the version of the table it routed with, so a request
// can carry it: a shard that has seen a newer table (after a split or a merge) can then refuse a
// request routed with an older one, and the caller route it again.
func (r *RangeRouter[K, S]) RouteVersion(key K) (S, uint64, error) {
	t := r.table.Load()
	s, err := t.Route(key)
	return s, t.version, err
}

// Replace validates ranges and makes them the new table; it returns the new version.
func (r *RangeRouter[K, S]) Replace(ranges []Range[K, S]) (uint64, error) {
	rs := slices.Clone(ranges)
	if r.clone != nil {
		for i := range rs {
			rs[i].Start, rs[i].End = r.clone(rs[i].Start), r.clone(rs[i].End)
		}
	}
	if err := r.validate(rs); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.publish(rs), nil
}

// Split cuts the range holding at into [Start, at) for left and [at, End) for right, and returns
// the new version. at must lie strictly inside a range.
func (r *RangeRouter[K, S]) Split(at K, left, right S) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.table.Load()
	rs := t.ranges
	i := t.find(at)
	if i < 0 {
		return 0, fmt.Errorf("%w: split at %v", ErrNoRange, at)
	}
	if !rs[i].NoStart && r.compare(rs[i].Start, at) == 0 {
		return 0, fmt.Errorf("%w: split at %v would leave an empty range", ErrBadRanges, at)
	}
	if r.clone != nil {
		at = r.clone(at)
	}
	l, rt := rs[i], rs[i]
	l.End, l.NoEnd, l.Shard = at, false, left
	rt.Start, rt.NoStart, rt.Shard = at, false, right
	return r.publish(slices.Concat(rs[:i], []Range[K, S]{l, rt}, rs[i+1:])), nil
}

// Merge joins the range that ends at at with the range that starts there into one range for
// shard, and returns the new version.
func (r *RangeRouter[K, S]) Merge(at K, shard S) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.table.Load()
	rs := t.ranges
	i := t.find(at)
	if i <= 0 || rs[i].NoStart || r.compare(rs[i].Start, at) != 0 {
		return 0, fmt.Errorf("%w: no boundary between two ranges at %v", ErrBadRanges, at)
	}
	m := rs[i-1]
	m.End, m.NoEnd, m.Shard = rs[i].End, rs[i].NoEnd, shard
	return r.publish(slices.Concat(rs[:i-1], []Range[K, S]{m}, rs[i+1:])), nil
}

// publish makes rs the next table. Caller holds r.mu.
func (r *RangeRouter[K, S]) publish(rs []Range[K, S]) uint64 {
	v := uint64(1)
	if t := r.table.Load(); t != nil {
		v = t.version + 1
	}
	r.table.Store(&RangeTable[K, S]{version: v, ranges: rs, compare: r.compare})
	return v
}

// validate reports every gap, overlap, unsorted pair and empty range.
func (r *RangeRouter[K, S]) validate(rs []Range[K, S]) error {
	if len(rs) == 0 {
		return fmt.Errorf("%w: no ranges", ErrBadRanges)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadRanges}, args...)...))
	}
	for i, x := range rs {
		if !x.NoStart && !x.NoEnd && r.compare(x.Start, x.End) >= 0 {
			bad("range %d [%v, %v) is empty", i, x.Start, x.End)
		}
		if i == 0 {
			continue
		}
		p := rs[i-1]
		switch {
		case x.NoStart:
			bad("range %d has no start but follows range %d", i, i-1)
		case p.NoEnd:
			bad("range %d has no end but range %d follows it", i-1, i)
		case !p.NoStart && r.compare(x.Start, p.Start) < 0:
			bad("range %d starts at %v, before range %d at %v: ranges must be sorted", i, x.Start, i-1, p.Start)
		case r.compare(p.End, x.Start) < 0:
			bad("gap between range %d ending at %v and range %d starting at %v", i-1, p.End, i, x.Start)
		case r.compare(p.End, x.Start) > 0:
			bad("range %d ending at %v overlaps range %d starting at %v", i-1, p.End, i, x.Start)
		}
	}
	return errors.Join(errs...)
}
