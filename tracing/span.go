package tracing

import (
	"context"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// SpanKind says what role a span plays in a request; the values follow OpenTelemetry.
type SpanKind uint8

// The span kinds. The zero value is SpanKindInternal.
const (
	SpanKindInternal SpanKind = iota // work inside one process
	SpanKindServer                   // handling a request from another process
	SpanKindClient                   // a request to another process
	SpanKindProducer                 // sending a message that is handled later
	SpanKindConsumer                 // handling such a message
)

var spanKindNames = [...]string{"internal", "server", "client", "producer", "consumer"}

// String returns the kind's lowercase name.
func (k SpanKind) String() string {
	if int(k) < len(spanKindNames) {
		return spanKindNames[k]
	}
	return "SpanKind(" + strconv.Itoa(int(k)) + ")"
}

// StatusCode is the outcome of a span's operation; the values match OTLP's.
type StatusCode uint8

// The status codes.
const (
	StatusUnset StatusCode = iota // nothing said: the default
	StatusOK                      // the application declares success; final
	StatusError                   // the operation failed
)

var statusNames = [...]string{"unset", "ok", "error"}

// String returns the code's lowercase name.
func (c StatusCode) String() string {
	if int(c) < len(statusNames) {
		return statusNames[c]
	}
	return "StatusCode(" + strconv.Itoa(int(c)) + ")"
}

// Status is a span's outcome; Description is kept only with StatusError.
type Status struct {
	Code        StatusCode
	Description string
}

// Event is something that happened at one instant during a span, such as an error.
type Event struct {
	Name              string
	Time              time.Time
	Attributes        []Attr
	DroppedAttributes int // attributes beyond Limits.MaxEventAttributes
}

// SpanData is a read-only view of a span, as processors and exporters see it. For an ended span
// its slices share memory with the span: do not modify them.
type SpanData struct {
	Name              string
	SpanContext       SpanContext
	Parent            SpanContext // the parent's IDs (State empty); invalid for a root span
	Kind              SpanKind
	Start, End        time.Time
	Attributes        []Attr
	Events            []Event
	Status            Status
	DroppedAttributes int    // attributes beyond Limits.MaxAttributes
	DroppedEvents     int    // events beyond Limits.MaxEvents
	Scope             string // the name of the Tracer that made the span
}

// Span is one timed operation of a trace. Start returns it; End finishes it. A Span that is not
// recording (not sampled, or from a nil Tracer) carries only its SpanContext, so that children
// and outgoing requests continue the trace, and its other methods do nothing. A nil *Span is
// valid and does nothing.
//
// A Span is safe for concurrent use. After End it no longer changes.
type Span struct {
	node spanNode // the context.Context that Start returns, allocated with the span
	sc   SpanContext
	rec  *record // nil when not recording
}

// spanNode is the context returned by Start: the caller's context plus this span. Embedding it
// in the Span makes Start cost one allocation instead of two.
type spanNode struct {
	context.Context
	span *Span
}

type spanKey struct{}

// Value returns the span for the package's key and defers to the parent context otherwise.
func (n *spanNode) Value(key any) any {
	if _, ok := key.(spanKey); ok {
		return n.span
	}
	return n.Context.Value(key)
}

// record is what a recording span accumulates; it shares one allocation with its Span. Its
// fields are ordered and sized to keep that allocation small (176 bytes with no attributes; a
// span that is not recording is 80): allocating is most of what a span costs, and the cost grows
// with the bytes.
type record struct {
	tracer       *Tracer
	state        atomic.Uint32 // recLocked, recEnded: a lock and the ended flag in one word
	kind         SpanKind
	parentRemote bool
	statusCode   StatusCode
	parentID     SpanID // the parent's trace ID is the span's own
	name         string
	startWall    int64         // Unix nanoseconds
	startMono    int64         // on the tracer's monotonic scale, see Tracer.now
	dur          time.Duration // end = start + dur
	attrs        []Attr        // inline storage of the allocation first, see newRecording
	more         *extras       // what most spans never need; nil until needed
}

// The bits of record.state. The lock is held for a few field writes at a time and spans are
// rarely changed from several goroutines at once, so waiters simply yield; one word instead of a
// sync.Mutex and a flag keeps the span at 176 bytes and makes End a single compare-and-swap.
const (
	recLocked = 1 << iota
	recEnded
)

// lock takes the lock of a span that has not ended; it reports false, without the lock, for an
// ended one.
func (r *record) lock() bool {
	for {
		st := r.state.Load()
		if st&recEnded != 0 {
			return false
		}
		if st&recLocked == 0 && r.state.CompareAndSwap(st, st|recLocked) {
			return true
		}
		runtime.Gosched()
	}
}

func (r *record) unlock() { r.state.Store(0) }

func (r *record) ended() bool { return r.state.Load()&recEnded != 0 }

// extras holds the rarer parts of a recording span.
type extras struct {
	events        []Event
	statusDesc    string
	droppedAttrs  int
	droppedEvents int
}

type recordingSpan struct {
	Span
	record
}

// Spans started with attributes get room for them in the same allocation, in the smallest of
// these that fits; attributes beyond that go to a slice of their own.
type (
	recordingSpan2 struct {
		recordingSpan
		inline [2]Attr
	}
	recordingSpan4 struct {
		recordingSpan
		inline [4]Attr
	}
	recordingSpan8 struct {
		recordingSpan
		inline [8]Attr
	}
)

// newRecording allocates a recording span with inline room for n attributes.
func newRecording(n int) (*Span, *record) {
	var rs *recordingSpan
	switch {
	case n == 0:
		rs = new(recordingSpan)
	case n <= 2:
		x := new(recordingSpan2)
		rs, x.attrs = &x.recordingSpan, x.inline[:0]
	case n <= 4:
		x := new(recordingSpan4)
		rs, x.attrs = &x.recordingSpan, x.inline[:0]
	default:
		x := new(recordingSpan8)
		rs, x.attrs = &x.recordingSpan, x.inline[:0]
	}
	rs.rec = &rs.record
	return &rs.Span, &rs.record
}

func (r *record) extras() *extras {
	if r.more == nil {
		r.more = &extras{}
	}
	return r.more
}

// setAttr adds a or replaces the value of its key; the caller holds the lock or owns the span.
func (r *record) setAttr(a Attr, lim *Limits) {
	if a.Key == "" {
		r.extras().droppedAttrs++
		return
	}
	a.Value = a.Value.truncate(lim.valueLen())
	for i := range r.attrs {
		if r.attrs[i].Key == a.Key {
			r.attrs[i].Value = a.Value
			return
		}
	}
	limit := lim.attrs()
	if len(r.attrs) >= limit {
		r.extras().droppedAttrs++
		return
	}
	if len(r.attrs) == cap(r.attrs) {
		r.grow(1, limit)
	}
	r.attrs = append(r.attrs, a)
}

// grow makes room for n more attributes in one allocation, at least doubling, never past limit.
func (r *record) grow(n, limit int) {
	c := min(limit, max(len(r.attrs)+n, 2*cap(r.attrs)))
	if c <= cap(r.attrs) {
		return
	}
	grown := make([]Attr, len(r.attrs), c)
	copy(grown, r.attrs)
	r.attrs = grown
}

func (r *record) parent(trace TraceID) SpanContext {
	if !r.parentID.IsValid() {
		return SpanContext{}
	}
	return SpanContext{TraceID: trace, SpanID: r.parentID, Remote: r.parentRemote}
}

// end returns the end time once the span has ended, the zero time before.
func (r *record) end() time.Time {
	if !r.ended() {
		return time.Time{}
	}
	return time.Unix(0, r.startWall).Add(r.dur)
}

// SpanContext returns the span's IDs, flags and trace state.
func (s *Span) SpanContext() SpanContext {
	if s == nil {
		return SpanContext{}
	}
	return s.sc
}

// IsRecording reports whether the span records attributes and events: sampled (or RecordOnly)
// and not yet ended.
func (s *Span) IsRecording() bool { return s != nil && s.rec != nil && !s.rec.ended() }

// lock locks a recording span that has not ended and returns its record, or nil.
func (s *Span) lock() *record {
	if s == nil || s.rec == nil || !s.rec.lock() {
		return nil
	}
	return s.rec
}

// SetName replaces the span's name.
func (s *Span) SetName(name string) {
	if r := s.lock(); r != nil {
		r.name = name
		r.unlock()
	}
}

// SetAttributes adds attributes; a key already present gets the new value. Beyond
// Limits.MaxAttributes new keys are dropped and counted.
func (s *Span) SetAttributes(attrs ...Attr) {
	if r := s.lock(); r != nil {
		if len(r.attrs)+len(attrs) > cap(r.attrs) {
			r.grow(len(attrs), r.tracer.limits.attrs())
		}
		for _, a := range attrs {
			r.setAttr(a, &r.tracer.limits)
		}
		r.unlock()
	}
}

// AddEvent records an event at the current time. Beyond Limits.MaxEvents events are dropped and
// counted.
func (s *Span) AddEvent(name string, attrs ...Attr) {
	if !s.IsRecording() {
		return
	}
	wall, _ := s.rec.tracer.now() // the clock the start time came from, so the times agree
	lim := &s.rec.tracer.limits
	ev := Event{Name: name, Time: time.Unix(0, wall)}
	if n := min(len(attrs), lim.eventAttrs()); n > 0 {
		ev.Attributes = make([]Attr, n)
		for i, a := range attrs[:n] {
			ev.Attributes[i] = Attr{a.Key, a.Value.truncate(lim.valueLen())}
		}
	}
	ev.DroppedAttributes = len(attrs) - len(ev.Attributes)
	if r := s.lock(); r != nil {
		if x := r.extras(); len(x.events) < lim.events() {
			x.events = append(x.events, ev)
		} else {
			x.droppedEvents++
		}
		r.unlock()
	}
}

// RecordError records err as an "exception" event with exception.type and exception.message, as
// OpenTelemetry does. Like OpenTelemetry it leaves the status alone: call SetStatus as well when
// the error means the operation failed. A nil err records nothing.
func (s *Span) RecordError(err error, attrs ...Attr) {
	if err == nil || !s.IsRecording() {
		return
	}
	all := make([]Attr, 0, 2+len(attrs))
	all = append(all, String("exception.type", errorType(err)), String("exception.message", err.Error()))
	s.AddEvent("exception", append(all, attrs...)...)
}

func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// SetStatus sets the span's status, following OpenTelemetry: StatusUnset is ignored, StatusOK is
// final, and the description is kept only with StatusError.
func (s *Span) SetStatus(code StatusCode, description string) {
	if code == StatusUnset || code > StatusError {
		return
	}
	if r := s.lock(); r != nil {
		if r.statusCode != StatusOK {
			r.statusCode = code
			if code == StatusError && description != "" {
				r.extras().statusDesc = description
			} else if r.more != nil {
				r.more.statusDesc = ""
			}
		}
		r.unlock()
	}
}

// End finishes the span and hands it to the tracer's processors if it is sampled. Calls after the
// first do nothing.
func (s *Span) End() {
	if s == nil || s.rec == nil {
		return
	}
	r := s.rec
	dur := r.tracer.monoSince(r.startMono) // the one clock read of End
	if !r.state.CompareAndSwap(0, recLocked) && !r.lock() {
		return // ended already
	}
	r.dur = max(dur, 0)
	r.state.Store(recEnded)
	if s.sc.Flags.IsSampled() {
		for _, p := range r.tracer.processors {
			p.OnEnd(s)
		}
	}
}

// Snapshot returns the span's data. For an ended span it shares memory with the span and does
// not allocate; for a running one it copies.
func (s *Span) Snapshot() SpanData {
	if s == nil {
		return SpanData{}
	}
	if s.rec == nil {
		return SpanData{SpanContext: s.sc}
	}
	if !s.rec.lock() {
		return s.data() // ended: nothing changes any more
	}
	d := s.data()
	d.Attributes = slices.Clone(d.Attributes)
	d.Events = slices.Clone(d.Events)
	s.rec.unlock()
	return d
}

func (s *Span) data() SpanData {
	r := s.rec
	var x extras
	if r.more != nil {
		x = *r.more
	}
	return SpanData{
		Name:              r.name,
		SpanContext:       s.sc,
		Parent:            r.parent(s.sc.TraceID),
		Kind:              r.kind,
		Start:             time.Unix(0, r.startWall),
		End:               r.end(),
		Attributes:        r.attrs,
		Events:            x.events,
		Status:            Status{r.statusCode, x.statusDesc},
		DroppedAttributes: x.droppedAttrs,
		DroppedEvents:     x.droppedEvents,
		Scope:             r.tracer.name(),
	}
}
