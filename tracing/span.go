package tracing

import (
	"context"
	"reflect"
	"slices"
	"strconv"
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
	parent context.Context // the context given to Start; the span is itself the context Start returns

	// The SpanContext's fields, and beside them in what would be its padding what the span
	// needs of its own, so that a Span is 64 bytes.
	traceID      TraceID
	spanID       SpanID
	traceState   TraceState
	flags        TraceFlags
	remote       bool     // the span context came from another process (Extract)
	recording    bool     // the Span is the first field of a recordingSpan, see rec
	kind         SpanKind // of a recording span
	parentRemote bool     // of a recording span: the parent came from another process
}

// SpanContext returns the span's IDs, flags and trace state.
func (s *Span) SpanContext() SpanContext {
	if s == nil {
		return SpanContext{}
	}
	return SpanContext{TraceID: s.traceID, SpanID: s.spanID, State: s.traceState, Flags: s.flags, Remote: s.remote}
}

// IsRecording reports whether the span records attributes and events: sampled (or RecordOnly)
// and not yet ended.
func (s *Span) IsRecording() bool {
	r := s.rec()
	return r != nil && r.state.Load()&stEnded == 0
}

// lock locks a recording span that has not ended and returns its record and state word; the
// record is nil otherwise.
func (s *Span) lock() (*record, uint64) {
	r := s.rec()
	if r == nil {
		return nil, 0
	}
	st, ok := r.lock()
	if !ok {
		return nil, 0
	}
	return r, st
}

// SetName replaces the span's name.
func (s *Span) SetName(name string) {
	if r, st := s.lock(); r != nil {
		r.name = name
		r.unlock(st)
	}
}

// SetAttributes adds attributes; a key already present gets the new value. Beyond
// Limits.MaxAttributes new keys are dropped and counted.
func (s *Span) SetAttributes(attrs ...Attr) {
	if len(attrs) == 0 {
		return
	}
	if r, st := s.lock(); r != nil {
		x := r.extras(len(attrs))
		if lim := &r.tracer.limits; !x.appendNew(attrs, lim) {
			for _, a := range attrs {
				x.setAttr(a, lim)
			}
		}
		r.unlock(st)
	}
}

// AddEvent records an event at the current time. Beyond Limits.MaxEvents events are dropped and
// counted.
func (s *Span) AddEvent(name string, attrs ...Attr) {
	if !s.IsRecording() {
		return
	}
	t := s.rec().tracer
	wall, _ := t.now() // the clock the start time came from, so the times agree
	lim := &t.limits
	ev := Event{Name: name, Time: time.Unix(0, wall)}
	if n := min(len(attrs), lim.eventAttrs()); n > 0 {
		ev.Attributes = make([]Attr, n)
		for i, a := range attrs[:n] {
			ev.Attributes[i] = Attr{a.Key, a.Value.truncate(lim.valueLen())}
		}
	}
	ev.DroppedAttributes = len(attrs) - len(ev.Attributes)
	if r, st := s.lock(); r != nil {
		x := r.extras(0)
		if x.events == nil {
			x.events = new(events)
		}
		if e := x.events; len(e.list) < lim.events() {
			e.list = append(e.list, ev)
		} else {
			e.dropped++
		}
		r.unlock(st)
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
	if r, st := s.lock(); r != nil {
		if StatusCode(st&stStatusMask>>stStatusShift) != StatusOK {
			st = st&^stStatusMask | uint64(code)<<stStatusShift
			if code == StatusError && description != "" {
				r.extras(0).statusDesc = description
			} else if r.more != nil {
				r.more.statusDesc = ""
			}
		}
		r.unlock(st)
	}
}

// End finishes the span and hands it to the tracer's processors if it is sampled. Calls after the
// first do nothing.
func (s *Span) End() {
	r := s.rec()
	if r == nil {
		return
	}
	// The one clock read of End, and one compare-and-swap that stores the duration and ends.
	if !r.end(r.tracer.monoSince(r.startMono)) {
		return
	}
	if s.flags.IsSampled() {
		for _, p := range r.tracer.processors {
			p.OnEnd(s)
		}
	}
}

// Snapshot returns the span's data. For an ended span it shares memory with the span and does
// not allocate; for a running one it copies.
func (s *Span) Snapshot() SpanData {
	r := s.rec()
	if r == nil {
		return SpanData{SpanContext: s.SpanContext()}
	}
	st, ok := r.lock()
	if !ok {
		return s.data(r, r.state.Load()) // ended: nothing changes any more
	}
	d := s.data(r, st)
	d.Attributes = slices.Clone(d.Attributes)
	d.Events = slices.Clone(d.Events)
	r.unlock(st)
	return d
}

// data reads the span's fields; st is the state word, read under the lock or after End.
func (s *Span) data(r *record, st uint64) SpanData {
	d := SpanData{
		Name:        r.name,
		SpanContext: s.SpanContext(),
		Kind:        s.kind,
		Start:       time.Unix(0, r.startWall),
		Status:      Status{Code: StatusCode(st & stStatusMask >> stStatusShift)},
		Scope:       r.tracer.name(),
	}
	if r.parentID.IsValid() {
		d.Parent = SpanContext{TraceID: s.traceID, SpanID: r.parentID, Remote: s.parentRemote}
	}
	if st&stEnded != 0 {
		d.End = time.Unix(0, r.startWall+int64(st>>stDurShift))
	}
	if x := r.more; x != nil {
		d.Attributes, d.DroppedAttributes = x.attrs, x.droppedAttrs
		d.Status.Description = x.statusDesc
		if e := x.events; e != nil {
			d.Events, d.DroppedEvents = e.list, e.dropped
		}
	}
	return d
}
