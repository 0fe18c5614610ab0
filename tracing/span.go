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

// Link points from a span to another span, of this trace or another, that it relates to: the
// messages a batch consumed, the request a retry repeats.
type Link struct {
	SpanContext       SpanContext
	Attributes        []Attr
	DroppedAttributes int // attributes beyond Limits.MaxLinkAttributes
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
	DroppedAttributes int // attributes beyond Limits.MaxAttributes
	DroppedEvents     int // events beyond Limits.MaxEvents
	Links             []Link
	DroppedLinks      int    // links beyond Limits.MaxLinks
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

// Context returns the context that holds s, as Start returned it: the context given to Start
// with s added. It lets code that was handed the span alone start its children or inject it.
// It is nil for a nil Span.
func (s *Span) Context() context.Context {
	if s == nil || s.parent == nil {
		return nil
	}
	return (*spanCtx)(s)
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
	wall, _ := s.rec().tracer.now() // the clock the start time came from, so the times agree
	s.addEvent(wall, name, attrs)
}

// AddEventAt records an event that happened at t, for events known after the fact.
func (s *Span) AddEventAt(t time.Time, name string, attrs ...Attr) {
	if s.IsRecording() {
		s.addEvent(t.UnixNano(), name, attrs)
	}
}

func (s *Span) addEvent(wall int64, name string, attrs []Attr) {
	lim := &s.rec().tracer.limits
	ev := Event{Name: name, Time: time.Unix(0, wall)}
	ev.Attributes, ev.DroppedAttributes = limitAttrs(attrs, lim.eventAttrs(), lim.valueLen())
	if r, st := s.lock(); r != nil {
		if x := r.extras(0).rareParts(); len(x.events) < lim.events() {
			x.events = append(x.events, ev)
		} else {
			x.droppedEvents++
		}
		r.unlock(st)
	}
}

// limitAttrs returns a copy of the first n of attrs with values cut to valueLen, and how many
// were left out.
func limitAttrs(attrs []Attr, n, valueLen int) ([]Attr, int) {
	n = min(len(attrs), n)
	if n == 0 {
		return nil, len(attrs)
	}
	kept := make([]Attr, n)
	for i, a := range attrs[:n] {
		kept[i] = Attr{a.Key, a.Value.truncate(valueLen)}
	}
	return kept, len(attrs) - n
}

// AddLink links the span to another span, as WithLinks does at Start. Beyond Limits.MaxLinks
// links are dropped and counted; a link to an invalid span context is ignored.
func (s *Span) AddLink(l Link) {
	if !l.SpanContext.IsValid() || !s.IsRecording() {
		return
	}
	if r, st := s.lock(); r != nil {
		r.addLinks([]Link{l})
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
// first do nothing. End reads the clock once and ends the span with one compare-and-swap.
func (s *Span) End() {
	if r := s.rec(); r != nil {
		s.finish(r, r.end(r.tracer.monoSince(r.startMono)))
	}
}

// EndAt finishes the span as End does, with t as its end time instead of the clock's.
func (s *Span) EndAt(t time.Time) {
	if r := s.rec(); r != nil {
		s.finish(r, r.end(time.Duration(t.UnixNano()-r.startWall)))
	}
}

// finish hands an ended span to the processors; ended is false when it had ended before.
func (s *Span) finish(r *record, ended bool) {
	if ended && s.flags.IsSampled() {
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
	d.Links = slices.Clone(d.Links)
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
		d.Attributes = x.attrs
		d.Status.Description = x.statusDesc
		if e := x.rare; e != nil {
			d.DroppedAttributes = e.droppedAttrs
			d.Events, d.DroppedEvents = e.events, e.droppedEvents
			d.Links, d.DroppedLinks = e.links, e.droppedLinks
			if st&stEndStored != 0 {
				d.End = time.Unix(0, e.endWall)
			}
		}
	}
	return d
}
