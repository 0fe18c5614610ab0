package breaker

import "sync/atomic"

// Bits of a call's outcome as a window stores it.
const (
	bitFailure uint32 = 1 << iota
	bitSlow
)

// window holds the outcomes of recent calls. Both kinds take no lock: counters are atomics, and
// a new window replaces the old one on every transition to Closed, so a late outcome of an earlier
// state lands in a window nobody reads any more.
type window interface {
	// record adds one outcome; now is the time since the breaker was made (time-based windows
	// only). It reports whether the window may now call for a trip (it held a failure or a slow
	// call), so that successes skip the rate check.
	record(outcome uint32, now int64) (check bool)
	// counts returns the calls, failures and slow calls the window holds at now.
	counts(now int64) (calls, failures, slow int64)
}

// countWindow holds the last len(slots) outcomes in a ring.
type countWindow struct {
	next     atomic.Int64 // calls recorded so far; the next slot is next % len(slots)
	failures atomic.Int64 // failures among the slots
	slow     atomic.Int64 // slow calls among the slots
	slots    []atomic.Uint32
}

func newCountWindow(size int) *countWindow {
	return &countWindow{slots: make([]atomic.Uint32, size)}
}

func (w *countWindow) record(o uint32, _ int64) bool {
	n := w.next.Add(1)
	if o == 0 && w.failures.Load() == 0 && w.slow.Load() == 0 {
		// Every slot holds a success: overwriting one with another changes nothing.
		return false
	}
	slot := &w.slots[uint64(n-1)%uint64(len(w.slots))]
	if o == 0 && slot.Load() == 0 {
		return false
	}
	old := slot.Swap(o)
	adjust(&w.failures, old, o, bitFailure)
	adjust(&w.slow, old, o, bitSlow)
	return o != 0
}

// adjust moves counter by the change of bit between the outcomes old and o.
func adjust(counter *atomic.Int64, old, o, bit uint32) {
	switch {
	case old&bit == 0 && o&bit != 0:
		counter.Add(1)
	case old&bit != 0 && o&bit == 0:
		counter.Add(-1)
	}
}

func (w *countWindow) counts(int64) (calls, failures, slow int64) {
	return min(w.next.Load(), int64(len(w.slots))), w.failures.Load(), w.slow.Load()
}

// timeWindow holds the outcomes of the last len(buckets) × width nanoseconds.
type timeWindow struct {
	width   int64 // nanoseconds per bucket
	buckets []timeBucket
}

type timeBucket struct {
	// epoch is 1 + the index (now / width) of the period the counters belong to; 0 when unused.
	epoch                 atomic.Int64
	calls, failures, slow atomic.Int64
}

func newTimeWindow(d int64, buckets int) *timeWindow {
	return &timeWindow{width: max(d/int64(buckets), 1), buckets: make([]timeBucket, buckets)}
}

func (w *timeWindow) record(o uint32, now int64) bool {
	epoch := now/w.width + 1
	b := &w.buckets[uint64(epoch)%uint64(len(w.buckets))]
	if old := b.epoch.Load(); old != epoch && b.epoch.CompareAndSwap(old, epoch) {
		// The bucket held an older period: start it afresh. A call recorded by another goroutine
		// between the swap and these stores is lost, which skews a rate by one call at most.
		b.calls.Store(0)
		b.failures.Store(0)
		b.slow.Store(0)
	}
	b.calls.Add(1)
	if o&bitFailure != 0 {
		b.failures.Add(1)
	}
	if o&bitSlow != 0 {
		b.slow.Add(1)
	}
	return o != 0
}

func (w *timeWindow) counts(now int64) (calls, failures, slow int64) {
	epoch := now/w.width + 1
	oldest := epoch - int64(len(w.buckets)) + 1
	for i := range w.buckets {
		b := &w.buckets[i]
		if e := b.epoch.Load(); e >= oldest && e <= epoch {
			calls += b.calls.Load()
			failures += b.failures.Load()
			slow += b.slow.Load()
		}
	}
	return calls, failures, slow
}
