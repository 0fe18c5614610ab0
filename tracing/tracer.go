package tracing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"
)

// Errors returned by the package; match them with errors.Is.
var (
	// ErrClosed is returned by processors and exporters used after Shutdown.
	ErrClosed = errors.New("tracing: closed")
	// ErrInvalidTraceparent wraps every reason a traceparent header is rejected.
	ErrInvalidTraceparent = errors.New("tracing: invalid traceparent")
	// ErrInvalidTracestate wraps every reason a tracestate header or member is rejected.
	ErrInvalidTracestate = errors.New("tracing: invalid tracestate")
)

// DefaultName is the instrumentation scope of a Tracer whose Options.Name is empty.
const DefaultName = "github.com/girder-go/girder/tracing"

// Limits bound what one span keeps, so that input from the network cannot grow a span without
// end. A zero field means its default; what goes over a limit is dropped and counted in SpanData.
type Limits struct {
	MaxAttributes        int // attributes per span; 0 means 128
	MaxEvents            int // events per span; 0 means 128
	MaxEventAttributes   int // attributes per event; 0 means 128
	MaxAttributeValueLen int // bytes of a string value, longer ones are cut; 0 means 4096, -1 means no limit
	MaxLinks             int // links per span; 0 means 128
	MaxLinkAttributes    int // attributes per link; 0 means 128
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func (l *Limits) attrs() int      { return orDefault(l.MaxAttributes, 128) }
func (l *Limits) events() int     { return orDefault(l.MaxEvents, 128) }
func (l *Limits) eventAttrs() int { return orDefault(l.MaxEventAttributes, 128) }
func (l *Limits) valueLen() int   { return orDefault(l.MaxAttributeValueLen, 4096) }
func (l *Limits) links() int      { return orDefault(l.MaxLinks, 128) }
func (l *Limits) linkAttrs() int  { return orDefault(l.MaxLinkAttributes, 128) }

func (l Limits) validate() []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxAttributes", l.MaxAttributes}, {"MaxEvents", l.MaxEvents}, {"MaxEventAttributes", l.MaxEventAttributes},
		{"MaxLinks", l.MaxLinks}, {"MaxLinkAttributes", l.MaxLinkAttributes}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("tracing: Limits.%s %d is negative", f.name, f.v))
		}
	}
	if l.MaxAttributeValueLen < -1 {
		errs = append(errs, fmt.Errorf("tracing: Limits.MaxAttributeValueLen %d is below -1", l.MaxAttributeValueLen))
	}
	return errs
}

// Options configure a Tracer. The zero value is valid.
type Options struct {
	// Name is the instrumentation scope reported with every span; "" means DefaultName.
	Name string
	// Sampler decides which new spans are recorded; nil means ParentBased(AlwaysSample()).
	Sampler Sampler
	// Processors receive every sampled span when it ends, in order; none means spans are
	// recorded but go nowhere.
	Processors []Processor
	// Limits bound attributes and events per span.
	Limits Limits
}

// Tracer starts spans. It is safe for concurrent use. The zero value is a usable tracer with the
// default sampler, default limits and no processors; a nil *Tracer starts no spans at all.
type Tracer struct {
	scope      string
	sampler    Sampler
	processors []Processor
	limits     Limits
	closed     atomic.Bool
	anchor     atomic.Pointer[anchor] // see now
	root       *Tracer                // of a tracer from WithScope: the one it was made from
}

// New returns a Tracer, or every problem with opts joined in one error.
func New(opts Options) (*Tracer, error) {
	errs := opts.Limits.validate()
	for i, p := range opts.Processors {
		if isNil(p) {
			errs = append(errs, fmt.Errorf("tracing: Processors[%d] is nil", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Tracer{
		scope:      opts.Name,
		sampler:    opts.Sampler,
		processors: append([]Processor(nil), opts.Processors...),
		limits:     opts.Limits,
	}, nil
}

// isNil reports whether p is nil or holds a nil pointer, map, func, channel or slice, whose
// methods would most likely panic when the first span ends.
func isNil(p Processor) bool {
	if p == nil {
		return true
	}
	switch v := reflect.ValueOf(p); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// WithScope returns a Tracer that reports scope as its spans' instrumentation scope and shares
// everything else with t: sampler, processors, limits, and Shutdown, which t and every tracer
// made from it share. A bridge for another tracing API calls it once per instrumenting library.
func (t *Tracer) WithScope(scope string) *Tracer {
	if t == nil {
		return nil
	}
	root := t
	if t.root != nil {
		root = t.root
	}
	return &Tracer{scope: scope, sampler: t.sampler, processors: t.processors, limits: t.limits, root: root}
}

func (t *Tracer) name() string {
	if t.scope == "" {
		return DefaultName
	}
	return t.scope
}

// anchorRefresh bounds how long wall-clock time is derived from the monotonic clock before it is
// read again; see now.
const anchorRefresh = time.Second

// anchor ties the monotonic clock to the wall clock.
type anchor struct {
	epoch time.Time // the tracer's first reading: monotonic times count from it
	wall  int64     // the wall clock at the anchor, Unix nanoseconds
	mono  int64     // the monotonic clock at the anchor, nanoseconds since epoch
}

// now returns the current wall time (Unix nanoseconds) and monotonic time (nanoseconds since the
// tracer's first reading) with one monotonic clock read instead of the two of time.Now: the wall
// time is an anchor read at most anchorRefresh ago plus the monotonic time elapsed since, so
// wall-clock steps show up within anchorRefresh while durations stay monotonic.
func (t *Tracer) now() (wall, mono int64) {
	a := t.anchor.Load()
	if a == nil {
		n := time.Now()
		t.anchor.CompareAndSwap(nil, &anchor{epoch: n, wall: n.UnixNano()})
		a = t.anchor.Load()
	}
	mono = int64(time.Since(a.epoch))
	if d := mono - a.mono; d >= 0 && d < int64(anchorRefresh) {
		return a.wall + d, mono
	}
	n := time.Now()
	fresh := &anchor{epoch: a.epoch, wall: n.UnixNano(), mono: int64(n.Sub(a.epoch))}
	t.anchor.Store(fresh)
	return fresh.wall, fresh.mono
}

// monoSince returns the monotonic nanoseconds elapsed since mono, a value from now.
func (t *Tracer) monoSince(mono int64) time.Duration {
	return time.Since(t.anchor.Load().epoch) - time.Duration(mono)
}

// StartOption configures one span at Start. Options are plain values so that passing them does
// not allocate.
type StartOption struct {
	inline  [optionAttrs]Attr // the first attributes of WithAttributes
	ninline int
	attrs   []Attr // the rest, copied
	links   []Link // copied
	kind    SpanKind
	at      time.Time
	set     uint8
	newRoot bool
}

const (
	setKind = 1 << iota
	setTime
)

// optionAttrs attributes travel inside a StartOption: the caller's slice is copied, never kept,
// so it can stay on the caller's stack.
const optionAttrs = 4

// WithAttributes sets attributes on the new span before the sampler sees it. Up to four cost no
// allocation; more cost one.
func WithAttributes(attrs ...Attr) StartOption {
	var o StartOption
	o.ninline = copy(o.inline[:], attrs)
	if len(attrs) > optionAttrs {
		o.attrs = append([]Attr(nil), attrs[optionAttrs:]...)
	}
	return o
}

// appendAttrs appends the option's attributes to dst.
func (o *StartOption) appendAttrs(dst []Attr) []Attr {
	return append(append(dst, o.inline[:o.ninline]...), o.attrs...)
}

// WithSpanKind sets the span's kind; the default is SpanKindInternal, and so is a kind that is not
// one of the constants.
func WithSpanKind(k SpanKind) StartOption { return StartOption{kind: k, set: setKind} }

// WithStartTime sets the start time instead of reading the clock. Any time is kept as given,
// years in the past or in the future; End still reads the clock, so a span started in the future
// ends before it starts, as the clock says.
func WithStartTime(t time.Time) StartOption { return StartOption{at: t, set: setTime} }

// WithNewRoot starts a new trace even when ctx holds a span.
func WithNewRoot() StartOption { return StartOption{newRoot: true} }

// WithLinks links the new span to other spans (see Link); the slice is copied. Links to invalid
// span contexts are ignored. They cost an allocation for the span's rarely used parts.
func WithLinks(links ...Link) StartOption {
	return StartOption{links: append([]Link(nil), links...)}
}

// startConfig is what the options of one Start add up to.
type startConfig struct {
	kind    SpanKind
	at      time.Time
	newRoot bool
	nattrs  int
	nlinks  int
}

// gather adds up opts into c, which is zero.
func (c *startConfig) gather(opts []StartOption) {
	for i := range opts {
		o := &opts[i]
		if o.set&setKind != 0 && o.kind <= SpanKindConsumer {
			c.kind = o.kind
		}
		if o.set&setTime != 0 {
			c.at = o.at
		}
		c.newRoot = c.newRoot || o.newRoot
		c.nattrs += o.ninline + len(o.attrs)
		c.nlinks += len(o.links)
	}
}

// Start starts a span named name as a child of the span in ctx (a local span from Start or a
// remote one from Extract), or as the root of a new trace. It returns a context holding the new
// span, for children and for Inject. A sampled span costs one allocation, which also holds up to
// eight attributes given with WithAttributes, and two monotonic clock reads with its End; a span
// that is not sampled costs one smaller allocation and reads no clock.
func (t *Tracer) Start(ctx context.Context, name string, opts ...StartOption) (context.Context, *Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	if t == nil {
		return ctx, nil
	}
	var b beginning
	t.begin(&b, ctx, name, opts)
	if !b.recording {
		s := new(b.span(ctx))
		return (*spanCtx)(s), s
	}
	// The Span and the record are one composite literal where possible: the compiler then fills
	// the new object in place instead of copying a built value.
	var rs *recordingSpan
	if b.cfg.nattrs == 0 {
		rs = &recordingSpan{Span: b.span(ctx), record: b.record(t, name)}
	} else {
		rs = newRecording(b.cfg.nattrs)
	}
	t.fill(rs, ctx, name, &b, opts)
	return (*spanCtx)(&rs.Span), &rs.Span
}

// StartWith starts a span as t.Start does and returns with it a new zero V that shares the
// span's allocation, so that a bridge to another tracing API, which needs an object of its own
// per span, costs one allocation instead of two. V lives as long as the span; a nil t returns a
// nil span and a V of its own.
func StartWith[V any](t *Tracer, ctx context.Context, name string, opts ...StartOption) (context.Context, *Span, *V) {
	if ctx == nil {
		ctx = context.Background()
	}
	if t == nil {
		return ctx, nil, new(V)
	}
	var b beginning
	t.begin(&b, ctx, name, opts)
	if !b.recording {
		w := &spanWith[V]{Span: b.span(ctx)}
		return (*spanCtx)(&w.Span), &w.Span, &w.v
	}
	if b.cfg.nattrs == 0 { // built in place, as in Start
		w := &recordingWith[V]{recordingSpan: recordingSpan{Span: b.span(ctx), record: b.record(t, name)}}
		t.fill(&w.recordingSpan, ctx, name, &b, opts)
		return (*spanCtx)(&w.Span), &w.Span, &w.v
	}
	rs, v := newRecordingWith[V](b.cfg.nattrs)
	t.fill(rs, ctx, name, &b, opts)
	return (*spanCtx)(&rs.Span), &rs.Span, v
}

// beginning is what Start decides before it allocates: the parent, the new IDs and the sampling.
type beginning struct {
	cfg       startConfig
	parent    SpanContext
	traceID   TraceID
	spanID    SpanID
	flags     TraceFlags
	recording bool
}

func (t *Tracer) begin(b *beginning, ctx context.Context, name string, opts []StartOption) {
	if len(opts) > 0 {
		b.cfg.gather(opts)
	}
	if p := SpanFromContext(ctx); p != nil && !b.cfg.newRoot && p.traceID.IsValid() && p.spanID.IsValid() {
		b.parent = SpanContext{TraceID: p.traceID, SpanID: p.spanID, State: p.traceState, Flags: p.flags, Remote: p.remote}
		b.traceID = p.traceID
		b.spanID = newSpanID()
	} else {
		newRootIDs(&b.traceID, &b.spanID)
	}
	b.flags, b.recording = t.sample(&b.parent, b.traceID, name, &b.cfg, opts)
}

// span is the new span's Span, as b decided it.
func (b *beginning) span(parent context.Context) Span {
	return Span{parent: parent, traceID: b.traceID, spanID: b.spanID, traceState: b.parent.State, flags: b.flags,
		recording: b.recording, kind: b.cfg.kind, parentRemote: b.parent.Remote}
}

// record is a new recording span's record, as b decided it.
func (b *beginning) record(t *Tracer, name string) record {
	return record{tracer: t, name: name, parentID: b.parent.SpanID}
}

// fill sets up a new recording span: its SpanContext and record when rs was not built in place
// (it has room for the options' attributes), the options' attributes and links, and the start.
func (t *Tracer) fill(rs *recordingSpan, ctx context.Context, name string, b *beginning, opts []StartOption) {
	if !rs.recording {
		rs.Span = b.span(ctx)
		rs.tracer, rs.name, rs.parentID = t, name, b.parent.SpanID // rs.more holds its room for attributes
		if b.cfg.nattrs > 0 {
			rs.addStartAttrs(opts)
		}
	}
	if b.cfg.nlinks > 0 {
		for i := range opts {
			rs.addLinks(opts[i].links)
		}
	}
	rs.startWall, rs.startMono = t.startTime(b.cfg.at)
}

// sample asks the sampler about the new span and returns its flags and whether to record it.
// The built-in samplers that ignore the parent are answered without a call.
func (t *Tracer) sample(parent *SpanContext, traceID TraceID, name string, cfg *startConfig, opts []StartOption) (TraceFlags, bool) {
	var decision Decision
	switch t.sampler.(type) {
	case alwaysSampler:
		decision = RecordAndSample
	case neverSampler:
		decision = Drop
	default:
		decision = decide(t.sampler, parent, traceID, name, cfg.kind, opts, cfg.nattrs)
	}
	flags := parent.Flags &^ FlagSampled
	if decision == RecordAndSample {
		flags |= FlagSampled
	}
	return flags, decision != Drop && !t.isClosed()
}

func (t *Tracer) isClosed() bool {
	return t.closed.Load() || t.root != nil && t.root.closed.Load()
}

// addStartAttrs sets the attributes of the options on a new span, which has room for them.
func (r *record) addStartAttrs(opts []StartOption) {
	x, lim := r.more, &r.tracer.limits
	for i := range opts {
		o := &opts[i]
		if !x.appendNew(o.inline[:o.ninline], lim) {
			for j := range o.ninline {
				x.setAttr(o.inline[j], lim)
			}
		}
		if !x.appendNew(o.attrs, lim) {
			for _, a := range o.attrs {
				x.setAttr(a, lim)
			}
		}
	}
}

// startTime returns the start on both of the tracer's scales: now, or at when it is set, whose
// distance from now is kept on the monotonic scale too.
func (t *Tracer) startTime(at time.Time) (wall, mono int64) {
	wall, mono = t.now()
	if !at.IsZero() {
		mono -= wall - at.UnixNano()
		wall = at.UnixNano()
	}
	return wall, mono
}

// Shutdown ends the tracer: later spans are not recorded, and every processor is shut down in
// order, flushing what it holds. It returns the processors' errors joined. Calls after the first
// return ErrClosed; on a nil Tracer, which never records, it does nothing and returns nil.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if t.root != nil {
		return t.root.Shutdown(ctx)
	}
	if t.closed.Swap(true) {
		return ErrClosed
	}
	var errs []error
	for _, p := range t.processors {
		errs = append(errs, p.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// ForceFlush asks every processor to export what it holds now, and waits for it or for ctx.
func (t *Tracer) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for _, p := range t.processors {
		errs = append(errs, p.ForceFlush(ctx))
	}
	return errors.Join(errs...)
}

// SpanFromContext returns the span held by ctx, or nil. For a context from Extract it is a span
// that is not recording and carries the remote SpanContext.
func SpanFromContext(ctx context.Context) *Span {
	switch c := ctx.(type) {
	case nil:
		return nil
	case *spanCtx:
		return (*Span)(c)
	case *spanNode:
		return c.span
	}
	s, _ := ctx.Value(spanKey{}).(*Span)
	return s
}

// SpanContextFromContext returns the SpanContext of the span held by ctx; it is invalid when
// there is none.
func SpanContextFromContext(ctx context.Context) SpanContext {
	return SpanFromContext(ctx).SpanContext()
}

// ContextWithSpan returns a copy of ctx holding s, for handing a span across goroutines or APIs
// that take a fresh context.
func ContextWithSpan(ctx context.Context, s *Span) context.Context {
	if ctx == nil {
		ctx = context.Background()
	}
	return &spanNode{ctx, s}
}

// ContextWithRemoteSpanContext returns a copy of ctx holding sc as a span from another process,
// so that the next Start continues its trace. Extract calls it; use it with other carriers.
func ContextWithRemoteSpanContext(ctx context.Context, sc SpanContext) context.Context {
	if ctx == nil {
		ctx = context.Background()
	}
	return (*spanCtx)(&Span{parent: ctx, traceID: sc.TraceID, spanID: sc.SpanID, traceState: sc.State, flags: sc.Flags, remote: true})
}
