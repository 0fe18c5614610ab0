package tracing

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// A span's memory. Allocating is most of what a span costs, and the cost grows with the bytes,
// so a span is one allocation laid out to fill a size class exactly: a span that is not
// recording is a Span alone (64 bytes: its parent context and its SpanContext's fields); a
// recording one is a recordingSpan (128 bytes: the Span followed by its record). The Span is
// also the context.Context that Start returns (see spanCtx), so there is no separate context node.

// recordingSpan is the allocation of a recording span: the record follows the Span in memory,
// so a *Span with recording set is the first field of a recordingSpan.
type recordingSpan struct {
	Span
	record
}

// record is what a recording span accumulates beyond its SpanContext.
type record struct {
	tracer    *Tracer
	state     atomic.Uint64 // see the st constants: lock, ended, status and duration in one word
	parentID  SpanID        // the parent's trace ID is the span's own
	name      string
	startWall int64   // Unix nanoseconds
	startMono int64   // on the tracer's monotonic scale, see Tracer.now
	more      *extras // attributes, events, status description; nil until needed
}

// The record's state word. It starts at zero, so Start does not write it. The lock is held for a
// few field writes at a time and spans are rarely changed from several goroutines at once, so
// waiters simply yield. Keeping the status and the duration in the same word keeps the record at
// 64 bytes and makes End a single compare-and-swap that both stores the duration and marks the
// span ended. A duration the word cannot hold (over 2.28 years, or negative when the start was
// given in the future) is stored in the extras as the end time, and stEndStored says so.
const (
	stLocked      = 1 << 0
	stEnded       = 1 << 1
	stStatusShift = 2      // 2 bits: the StatusCode
	stEndStored   = 1 << 4 // the end time is extras.endWall
	stDurShift    = 8      // 56 bits: the duration in nanoseconds once ended

	stStatusMask = 3 << stStatusShift
	stMaxDur     = 1<<(64-stDurShift) - 1
)

// extras holds the parts of a recording span that many spans never need. Spans given attributes
// get their extras and room for the attributes in one allocation, see newRecording and
// newExtras.
type extras struct {
	attrs      []Attr
	rare       *rare // rarer still: behind a pointer, so that extras with four attributes fit 256 bytes
	statusDesc string
}

// rare are a span's events and links, the counts of those dropped, and an end time the state
// word cannot hold.
type rare struct {
	droppedAttrs  int // over Limits.MaxAttributes or without a key
	events        []Event
	droppedEvents int
	links         []Link
	droppedLinks  int
	endWall       int64
}

// Allocations with inline room for attributes, in the smallest that fits; attributes beyond
// eight go to a slice of their own.
type (
	recordingSpan2 struct {
		recordingSpan
		x      extras
		inline [2]Attr
	}
	recordingSpan4 struct {
		recordingSpan
		x      extras
		inline [4]Attr
	}
	recordingSpan8 struct {
		recordingSpan
		x      extras
		inline [8]Attr
	}
	extras2 struct {
		extras
		inline [2]Attr
	}
	extras4 struct {
		extras
		inline [4]Attr
	}
	extras8 struct {
		extras
		inline [8]Attr
	}
)

// newRecording allocates a recording span with room for n attributes.
func newRecording(n int) *recordingSpan {
	switch {
	case n == 0:
		return new(recordingSpan)
	case n <= 2:
		s := new(recordingSpan2)
		s.more, s.x.attrs = &s.x, s.inline[:0]
		return &s.recordingSpan
	case n <= 4:
		s := new(recordingSpan4)
		s.more, s.x.attrs = &s.x, s.inline[:0]
		return &s.recordingSpan
	default:
		s := new(recordingSpan8)
		s.more, s.x.attrs = &s.x, s.inline[:0]
		return &s.recordingSpan
	}
}

// The allocations of StartWith: a span and its attributes as above, followed by the caller's V.
type (
	spanWith[V any] struct {
		Span
		v V
	}
	recordingWith[V any] struct {
		recordingSpan
		v V
	}
	recordingWith2[V any] struct {
		recordingSpan
		x      extras
		inline [2]Attr
		v      V
	}
	recordingWith4[V any] struct {
		recordingSpan
		x      extras
		inline [4]Attr
		v      V
	}
	recordingWith8[V any] struct {
		recordingSpan
		x      extras
		inline [8]Attr
		v      V
	}
)

// newRecordingWith allocates a recording span with room for n attributes, and a V beside it.
func newRecordingWith[V any](n int) (*recordingSpan, *V) {
	switch {
	case n == 0:
		s := new(recordingWith[V])
		return &s.recordingSpan, &s.v
	case n <= 2:
		s := new(recordingWith2[V])
		s.more, s.x.attrs = &s.x, s.inline[:0]
		return &s.recordingSpan, &s.v
	case n <= 4:
		s := new(recordingWith4[V])
		s.more, s.x.attrs = &s.x, s.inline[:0]
		return &s.recordingSpan, &s.v
	default:
		s := new(recordingWith8[V])
		s.more, s.x.attrs = &s.x, s.inline[:0]
		return &s.recordingSpan, &s.v
	}
}

// newExtras allocates extras with room for n attributes.
func newExtras(n int) *extras {
	switch {
	case n == 0:
		return new(extras)
	case n <= 2:
		x := new(extras2)
		x.attrs = x.inline[:0]
		return &x.extras
	case n <= 4:
		x := new(extras4)
		x.attrs = x.inline[:0]
		return &x.extras
	default:
		x := new(extras8)
		x.attrs = x.inline[:0]
		return &x.extras
	}
}

// rec returns the record of a recording span, or nil.
func (s *Span) rec() *record {
	if s == nil || !s.recording {
		return nil
	}
	return &(*recordingSpan)(unsafe.Pointer(s)).record
}

// lock takes the lock of a span that has not ended and returns the state word as it was; it
// reports false, without the lock, for an ended one.
func (r *record) lock() (uint64, bool) {
	for {
		st := r.state.Load()
		if st&stEnded != 0 {
			return 0, false
		}
		if st&stLocked == 0 && r.state.CompareAndSwap(st, st|stLocked) {
			return st, true
		}
		runtime.Gosched()
	}
}

// unlock releases the lock, storing st, the word lock returned with any status change applied.
func (r *record) unlock(st uint64) { r.state.Store(st &^ stLocked) }

// end marks the span ended with the given duration; it reports false if it had ended already.
// A duration outside what the state word holds is stored as the end time instead.
func (r *record) end(dur time.Duration) bool {
	if dur < 0 || dur > stMaxDur {
		return r.endStored(r.startWall + int64(dur))
	}
	d := uint64(dur)
	for {
		st := r.state.Load()
		if st&stEnded != 0 {
			return false
		}
		if st&stLocked == 0 && r.state.CompareAndSwap(st, st|stEnded|d<<stDurShift) {
			return true
		}
		runtime.Gosched()
	}
}

// endStored ends the span at wall, kept in the extras; it reports false if it had ended already.
func (r *record) endStored(wall int64) bool {
	st, ok := r.lock()
	if !ok {
		return false
	}
	r.extras(0).rareParts().endWall = wall
	r.state.Store(st&^stLocked | stEnded | stEndStored)
	return true
}

// rareParts returns the extras' rare parts, allocating them if needed; the caller holds the lock.
func (x *extras) rareParts() *rare {
	if x.rare == nil {
		x.rare = new(rare)
	}
	return x.rare
}

// extras returns the span's extras with room for n more attributes, allocating them if needed;
// the caller holds the lock or owns the span.
func (r *record) extras(n int) *extras {
	if r.more == nil {
		r.more = newExtras(n)
	} else if len(r.more.attrs)+n > cap(r.more.attrs) {
		r.more.grow(n, r.tracer.limits.attrs())
	}
	return r.more
}

// addLinks appends copies of the valid links within the limits; the caller holds the lock or owns
// the span.
func (r *record) addLinks(links []Link) {
	lim := &r.tracer.limits
	x := r.extras(0).rareParts()
	for _, l := range links {
		if !l.SpanContext.IsValid() {
			continue
		}
		if len(x.links) >= lim.links() {
			x.droppedLinks++
			continue
		}
		attrs, dropped := limitAttrs(l.Attributes, lim.linkAttrs(), lim.valueLen())
		x.links = append(x.links, Link{SpanContext: l.SpanContext, Attributes: attrs, DroppedAttributes: l.DroppedAttributes + dropped})
	}
}

// setAttr adds a or replaces the value of its key.
func (x *extras) setAttr(a Attr, lim *Limits) {
	if a.Key == "" {
		x.rareParts().droppedAttrs++
		return
	}
	a.Value = a.Value.truncate(lim.valueLen())
	for i := range x.attrs {
		if x.attrs[i].Key == a.Key {
			x.attrs[i].Value = a.Value
			return
		}
	}
	limit := lim.attrs()
	if len(x.attrs) >= limit {
		x.rareParts().droppedAttrs++
		return
	}
	if len(x.attrs) == cap(x.attrs) {
		x.grow(1, limit)
	}
	x.attrs = append(x.attrs, a)
}

// appendNew appends attrs in one copy when setAttr would simply append each: every key is
// non-empty and new, no value needs cutting and all fit under the limit. It reports whether it
// did; when not, it has changed nothing. The caller has made room for attrs. It is the fast path
// of the attributes given to Start: one copy instead of a search and an append for each.
func (x *extras) appendNew(attrs []Attr, lim *Limits) bool {
	n := len(x.attrs)
	if n+len(attrs) > lim.attrs() || n+len(attrs) > cap(x.attrs) {
		return false
	}
	valueLen := lim.valueLen()
	for i := range attrs {
		a := &attrs[i]
		if a.Key == "" || valueLen >= 0 && (a.Value.kind == kindString && len(a.Value.str) > valueLen ||
			a.Value.kind == kindStringSlice && a.Value.needsCut(valueLen)) {
			return false
		}
		if hasKey(x.attrs, a.Key) || hasKey(attrs[:i], a.Key) {
			return false
		}
	}
	x.attrs = append(x.attrs, attrs...)
	return true
}

// hasKey reports whether attrs holds key, which is not empty. Keys of one span mostly differ in
// length or last byte; checking those first spares most calls to the runtime's comparison.
func hasKey(attrs []Attr, key string) bool {
	last := len(key) - 1
	for i := range attrs {
		if k := attrs[i].Key; len(k) == len(key) && k[last] == key[last] && k == key {
			return true
		}
	}
	return false
}

// grow makes room for n more attributes in one allocation, at least doubling, never past limit.
func (x *extras) grow(n, limit int) {
	c := min(limit, max(len(x.attrs)+n, 2*cap(x.attrs)))
	if c <= cap(x.attrs) {
		return
	}
	grown := make([]Attr, len(x.attrs), c)
	copy(grown, x.attrs)
	x.attrs = grown
}

// spanCtx is a Span seen as the context.Context that Start returns: the span's parent context
// plus the span. The conversion from *Span is free, which makes Start one allocation.
type spanCtx Span

type spanKey struct{}

func (c *spanCtx) Deadline() (time.Time, bool) { return c.parent.Deadline() }
func (c *spanCtx) Done() <-chan struct{}       { return c.parent.Done() }
func (c *spanCtx) Err() error                  { return c.parent.Err() }

// Value returns the span for the package's key and defers to the parent context otherwise.
func (c *spanCtx) Value(key any) any {
	if _, ok := key.(spanKey); ok {
		return (*Span)(c)
	}
	return c.parent.Value(key)
}

// spanNode holds an existing span in a new context, for ContextWithSpan.
type spanNode struct {
	context.Context
	span *Span
}

// Value returns the span for the package's key and defers to the parent context otherwise.
func (n *spanNode) Value(key any) any {
	if _, ok := key.(spanKey); ok {
		return n.span
	}
	return n.Context.Value(key)
}
