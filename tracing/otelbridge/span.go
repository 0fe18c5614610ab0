package otelbridge

import (
	"context"
	"reflect"
	"runtime/debug"
	"time"

	"github.com/girder-go/girder/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// span is a girder span as the OpenTelemetry API sees it, and the context Start returns: it
// answers OpenTelemetry's context key with itself and defers everything else to girder's context,
// which holds the girder span. Start allocates it with the girder span (tracing.StartWith), so
// one allocation serves both spans and both APIs' contexts.
type span struct {
	*scope               // shared by the spans of one tracer, so that a span adds 16 bytes to girder's
	g      *tracing.Span // nil when the provider has no girder Tracer
}

// scope is what the spans of one tracer share: the embedded trace.Span that the API asks
// implementations to embed, whose one method is never called, and the provider.
type scope struct {
	embedded.Span
	provider *TracerProvider
}

// remoteScope is the scope of the spans Extract puts in a context, which no provider made.
var remoteScope = &scope{}

var (
	_ trace.Span      = (*span)(nil)
	_ context.Context = (*span)(nil)
)

// gctx returns girder's context for the span, which it defers to as a context.
func (s *span) gctx() context.Context {
	if c := s.g.Context(); c != nil {
		return c
	}
	return context.Background() // no girder Tracer: start does not hand this span out as a context
}

func (s *span) Deadline() (time.Time, bool) { return s.gctx().Deadline() }
func (s *span) Done() <-chan struct{}       { return s.gctx().Done() }
func (s *span) Err() error                  { return s.gctx().Err() }

// Value returns the span for OpenTelemetry's span key, and girder's answer for every other key.
func (s *span) Value(key any) any {
	if key == otelSpanKey {
		return trace.Span(s)
	}
	return s.gctx().Value(key)
}

// otelSpanKey is the key trace.ContextWithSpan stores a span under, learnt once by asking a
// context that records the key it is asked for.
var otelSpanKey = func() any {
	p := &keyProbe{Context: context.Background()}
	trace.SpanFromContext(p)
	return p.key
}()

type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}

// girderContext returns ctx as girder's Start should see it: a span context that another
// OpenTelemetry implementation put in ctx becomes girder's (remote) parent, and a span of this
// package that trace.ContextWithSpan put in a context without girder's key is found again.
func girderContext(ctx context.Context) context.Context {
	o, _ := ctx.Value(otelSpanKey).(trace.Span)
	if o == nil {
		return ctx
	}
	g := tracing.SpanFromContext(ctx)
	if bs, ok := o.(*span); ok {
		if g == nil {
			return tracing.ContextWithSpan(ctx, bs.g)
		}
		return ctx // girder's innermost span: the same span or a girder span started under it
	}
	if sc := o.SpanContext(); sc.IsValid() {
		return tracing.ContextWithRemoteSpanContext(ctx, toGirder(sc))
	}
	return ctx
}

// End ends the span, at trace.WithTimestamp's time when given.
func (s *span) End(opts ...trace.SpanEndOption) {
	if len(opts) == 0 {
		s.g.End()
		return
	}
	if cfg := trace.NewSpanEndConfig(opts...); !cfg.Timestamp().IsZero() {
		s.g.EndAt(cfg.Timestamp())
		return
	}
	s.g.End()
}

// AddEvent records an event at trace.WithTimestamp's time, or now.
func (s *span) AddEvent(name string, opts ...trace.EventOption) {
	if !s.g.IsRecording() {
		return
	}
	cfg := trace.NewEventConfig(opts...)
	s.g.AddEventAt(cfg.Timestamp(), name, convertAttrs(cfg.Attributes())...)
}

// AddLink links the span to another.
func (s *span) AddLink(l trace.Link) {
	s.g.AddLink(tracing.Link{SpanContext: toGirder(l.SpanContext), Attributes: convertAttrs(l.Attributes)})
}

// IsRecording reports whether the girder span records.
func (s *span) IsRecording() bool { return s.g.IsRecording() }

// RecordError records err as an "exception" event as OpenTelemetry's SDK does, with
// exception.stacktrace when trace.WithStackTrace(true) is given; it leaves the status alone.
func (s *span) RecordError(err error, opts ...trace.EventOption) {
	if err == nil || !s.g.IsRecording() {
		return
	}
	cfg := trace.NewEventConfig(opts...)
	attrs := []tracing.Attr{
		tracing.String("exception.type", errorType(err)),
		tracing.String("exception.message", err.Error()),
	}
	attrs = appendAttrs(attrs, cfg.Attributes())
	if cfg.StackTrace() {
		attrs = append(attrs, tracing.String("exception.stacktrace", string(debug.Stack())))
	}
	s.g.AddEventAt(cfg.Timestamp(), "exception", attrs...)
}

func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// SpanContext returns the span's context in OpenTelemetry's form.
func (s *span) SpanContext() trace.SpanContext { return toOTel(s.g.SpanContext()) }

// SetStatus sets the status; OpenTelemetry's and girder's rules are the same.
func (s *span) SetStatus(code codes.Code, description string) {
	s.g.SetStatus(statusCode(code), description)
}

// SetName renames the span.
func (s *span) SetName(name string) { s.g.SetName(name) }

// SetAttributes sets attributes, converting up to four on the stack.
func (s *span) SetAttributes(kvs ...attribute.KeyValue) {
	if len(kvs) == 0 || !s.g.IsRecording() {
		return
	}
	var stack [maxStackAttrs]tracing.Attr
	attrs := stack[:0]
	if len(kvs) > maxStackAttrs {
		attrs = make([]tracing.Attr, 0, len(kvs))
	}
	s.g.SetAttributes(appendAttrs(attrs, kvs)...)
}

// TracerProvider returns the provider that made the span.
func (s *span) TracerProvider() trace.TracerProvider {
	if s.provider == nil {
		return NewTracerProvider(nil)
	}
	return s.provider
}
