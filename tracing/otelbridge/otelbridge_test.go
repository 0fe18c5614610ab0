package otelbridge_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func newProvider(t *testing.T, opts tracing.Options) (*tracing.Tracer, *otelbridge.TracerProvider, *tracing.InMemoryExporter) {
	t.Helper()
	exp := &tracing.InMemoryExporter{}
	sp, err := tracing.NewSyncProcessor(exp, nil)
	require.NoError(t, err)
	opts.Processors = append(opts.Processors, sp)
	tr, err := tracing.New(opts)
	require.NoError(t, err)
	return tr, otelbridge.NewTracerProvider(tr), exp
}

func byName(t *testing.T, exp *tracing.InMemoryExporter) map[string]tracing.SpanData {
	t.Helper()
	m := map[string]tracing.SpanData{}
	for _, s := range exp.Spans() {
		m[s.Name] = s
	}
	return m
}

func TestAttributesOfEveryType(t *testing.T) {
	_, p, exp := newProvider(t, tracing.Options{})
	kvs := []attribute.KeyValue{
		attribute.String("s", "v"), attribute.Int64("i", -4), attribute.Int("int", 7), attribute.Float64("f", 0.5),
		attribute.Bool("b", true), attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1, 2}),
		attribute.Float64Slice("fs", []float64{1.5}), attribute.BoolSlice("bs", []bool{true, false}), {Key: "invalid"},
	}
	tests := []struct {
		name  string
		start func(trace.Tracer) trace.Span
	}{
		{"at start, one option", func(tr trace.Tracer) trace.Span {
			_, s := tr.Start(context.Background(), "x", trace.WithAttributes(kvs...))
			return s
		}},
		{"at start, split and mixed with other options", func(tr trace.Tracer) trace.Span {
			_, s := tr.Start(context.Background(), "x", trace.WithAttributes(kvs[:3]...), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(kvs[3:]...))
			return s
		}},
		{"set later", func(tr trace.Tracer) trace.Span {
			_, s := tr.Start(context.Background(), "x")
			s.SetAttributes(kvs[:2]...)
			s.SetAttributes(kvs[2:]...)
			return s
		}},
	}
	want := []tracing.Attr{
		tracing.String("s", "v"), tracing.Int64("i", -4), tracing.Int64("int", 7), tracing.Float64("f", 0.5),
		tracing.Bool("b", true), tracing.StringSlice("ss", []string{"a", "b"}), tracing.Int64Slice("is", []int64{1, 2}),
		tracing.Float64Slice("fs", []float64{1.5}), tracing.BoolSlice("bs", []bool{true, false}),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp.Reset()
			tt.start(p.Tracer("lib")).End()
			got := exp.Spans()
			require.Len(t, got, 1)
			require.Len(t, got[0].Attributes, len(want))
			for i, a := range got[0].Attributes {
				assert.Equal(t, want[i].Key, a.Key)
				assert.True(t, want[i].Value.Equal(a.Value), "%s: %v, want %v", a.Key, a.Value, want[i].Value)
			}
			assert.Equal(t, "lib", got[0].Scope)
		})
	}
}

func TestSpanKindsAndStatus(t *testing.T) {
	tests := []struct {
		kind   trace.SpanKind
		want   tracing.SpanKind
		code   codes.Code
		status tracing.Status
	}{
		{trace.SpanKindUnspecified, tracing.SpanKindInternal, codes.Unset, tracing.Status{}},
		{trace.SpanKindInternal, tracing.SpanKindInternal, codes.Ok, tracing.Status{Code: tracing.StatusOK}},
		{trace.SpanKindServer, tracing.SpanKindServer, codes.Error, tracing.Status{Code: tracing.StatusError, Description: "boom"}},
		{trace.SpanKindClient, tracing.SpanKindClient, codes.Error, tracing.Status{Code: tracing.StatusError, Description: "boom"}},
		{trace.SpanKindProducer, tracing.SpanKindProducer, codes.Ok, tracing.Status{Code: tracing.StatusOK}},
		{trace.SpanKindConsumer, tracing.SpanKindConsumer, codes.Unset, tracing.Status{}},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			_, p, exp := newProvider(t, tracing.Options{})
			_, s := p.Tracer("").Start(context.Background(), "op", trace.WithSpanKind(tt.kind))
			s.SetStatus(tt.code, "boom")
			s.SetName("renamed")
			s.End()
			d := exp.Spans()[0]
			assert.Equal(t, tt.want, d.Kind)
			assert.Equal(t, tt.status, d.Status)
			assert.Equal(t, "renamed", d.Name)
			assert.Equal(t, tracing.DefaultName, d.Scope)
		})
	}
}

func TestTimestampsEventsLinksErrors(t *testing.T) {
	_, p, exp := newProvider(t, tracing.Options{})
	start := time.Date(2021, 1, 2, 3, 4, 5, 6, time.UTC)
	end := start.Add(4 * 365 * 24 * time.Hour) // beyond what girder's duration word holds
	evAt := start.Add(time.Minute)
	linked := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled})
	later := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{6}})

	_, s := p.Tracer("lib").Start(context.Background(), "op", trace.WithTimestamp(start),
		trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.Int("n", 1)}}))
	assert.True(t, s.IsRecording())
	s.AddEvent("ev", trace.WithTimestamp(evAt), trace.WithAttributes(attribute.String("k", "v")))
	s.AddLink(trace.Link{SpanContext: later})
	s.RecordError(errors.New("boom"), trace.WithStackTrace(true), trace.WithTimestamp(evAt), trace.WithAttributes(attribute.Bool("retry", true)))
	s.RecordError(nil)
	s.End(trace.WithTimestamp(end))
	assert.False(t, s.IsRecording())

	d := exp.Spans()[0]
	assert.True(t, d.Start.Equal(start))
	assert.True(t, d.End.Equal(end), "end %v", d.End)
	require.Len(t, d.Events, 2)
	assert.Equal(t, "ev", d.Events[0].Name)
	assert.True(t, d.Events[0].Time.Equal(evAt))
	assert.Equal(t, []tracing.Attr{tracing.String("k", "v")}, d.Events[0].Attributes)
	exc := d.Events[1]
	assert.Equal(t, "exception", exc.Name)
	assert.True(t, exc.Time.Equal(evAt))
	keys := map[string]string{}
	for _, a := range exc.Attributes {
		keys[a.Key] = a.Value.String()
	}
	assert.Equal(t, "*errors.errorString", keys["exception.type"])
	assert.Equal(t, "boom", keys["exception.message"])
	assert.Equal(t, "true", keys["retry"])
	assert.Contains(t, keys["exception.stacktrace"], "otelbridge_test")
	require.Len(t, d.Links, 2)
	assert.Equal(t, tracing.TraceID{9}, d.Links[0].SpanContext.TraceID)
	assert.Equal(t, []tracing.Attr{tracing.Int64("n", 1)}, d.Links[0].Attributes)
	assert.Equal(t, tracing.SpanID{6}, d.Links[1].SpanContext.SpanID)
	assert.Equal(t, tracing.Status{}, d.Status, "RecordError leaves the status alone")
}

// One trace across both APIs: each span's parent is the innermost span of either API in ctx.
func TestOneTraceAcrossBothAPIs(t *testing.T) {
	tr, p, exp := newProvider(t, tracing.Options{})
	otr := p.Tracer("otel-lib")

	ctx, root := tr.Start(context.Background(), "girder root")
	ctx, o1 := otr.Start(ctx, "otel child")
	assert.Equal(t, o1, trace.SpanFromContext(ctx), "OpenTelemetry sees its span")
	assert.Equal(t, o1.SpanContext().SpanID(), trace.SpanID(tracing.SpanFromContext(ctx).SpanContext().SpanID), "girder sees the same span")
	ctx2, g2 := tr.Start(ctx, "girder grandchild")
	_, o3 := otr.Start(ctx2, "otel great-grandchild")
	assert.Equal(t, o1, trace.SpanFromContext(ctx2), "OpenTelemetry's view below a girder span is its innermost OTel span")
	o3.End()
	g2.End()
	// A bridge span handed over with trace.ContextWithSpan alone is found by the provider.
	bare := trace.ContextWithSpan(context.Background(), o1)
	_, o4 := otr.Start(bare, "otel under a bare otel context")
	o4.End()
	o1.End()
	root.End()

	spans := byName(t, exp)
	require.Len(t, spans, 5)
	parentOf := map[string]string{
		"otel child":                     "girder root",
		"girder grandchild":              "otel child",
		"otel great-grandchild":          "girder grandchild",
		"otel under a bare otel context": "otel child",
	}
	for child, parent := range parentOf {
		assert.Equal(t, spans[parent].SpanContext.SpanID, spans[child].Parent.SpanID, "%s under %s", child, parent)
		assert.Equal(t, spans["girder root"].SpanContext.TraceID, spans[child].SpanContext.TraceID)
	}
	assert.Equal(t, "otel-lib", spans["otel child"].Scope)
}

func TestForeignSpanContextAndNewRoot(t *testing.T) {
	_, p, exp := newProvider(t, tracing.Options{})
	foreign := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), foreign)
	ctx, child := p.Tracer("").Start(ctx, "child")
	_, root := p.Tracer("").Start(ctx, "root", trace.WithNewRoot())
	root.End()
	child.End()
	spans := byName(t, exp)
	assert.Equal(t, tracing.TraceID{1}, spans["child"].SpanContext.TraceID)
	assert.Equal(t, tracing.SpanID{2}, spans["child"].Parent.SpanID)
	assert.True(t, spans["child"].Parent.Remote)
	assert.False(t, spans["root"].Parent.SpanID.IsValid())
	assert.NotEqual(t, tracing.TraceID{1}, spans["root"].SpanContext.TraceID)
}

func TestSamplingThroughGirder(t *testing.T) {
	_, p, exp := newProvider(t, tracing.Options{Sampler: tracing.NeverSample()})
	ctx, s := p.Tracer("").Start(context.Background(), "dropped", trace.WithAttributes(attribute.Int("a", 1)))
	assert.False(t, s.IsRecording())
	assert.True(t, s.SpanContext().IsValid())
	assert.False(t, s.SpanContext().IsSampled())
	s.SetAttributes(attribute.Int("b", 2))
	s.AddEvent("e")
	s.End()
	assert.Empty(t, exp.Spans())
	assert.Equal(t, s.SpanContext(), trace.SpanContextFromContext(ctx))
	assert.Equal(t, trace.TracerProvider(p), s.TracerProvider())
}

func TestTraceContextPropagator(t *testing.T) {
	const state = "foo@@bar=1,vendor=2" // a Level 2 key that OpenTelemetry's own parser rejects
	tr, p, exp := newProvider(t, tracing.Options{})
	prop := otelbridge.TraceContext{}
	assert.Equal(t, []string{"traceparent", "tracestate"}, prop.Fields())

	// girder injects, the OpenTelemetry API extracts.
	remote, err := tracing.ParseTraceState(state)
	require.NoError(t, err)
	sc := tracing.SpanContext{TraceID: tracing.TraceID{0xaa}, SpanID: tracing.SpanID{0xbb}, Flags: tracing.FlagSampled, State: remote}
	gctx, gspan := tr.Start(tracing.ContextWithRemoteSpanContext(context.Background(), sc), "girder client")
	h := http.Header{}
	tracing.Inject(gctx, h)
	h.Add("Tracestate", "other=3") // a second header line is read too
	octx := prop.Extract(context.Background(), propagation.HeaderCarrier(h))
	assert.True(t, trace.SpanContextFromContext(octx).IsRemote())
	_, server := p.Tracer("").Start(octx, "otel server")
	server.End()
	gspan.End()

	// The OpenTelemetry API injects, girder extracts, with the Level 2 state intact.
	out := http.Header{}
	octx2, client := p.Tracer("").Start(octx, "otel client")
	prop.Inject(octx2, propagation.HeaderCarrier(out))
	client.End()
	assert.Equal(t, state+",other=3", out.Get("Tracestate"))
	_, g := tr.Start(tracing.Extract(context.Background(), out), "girder server")
	g.End()

	spans := byName(t, exp)
	assert.Equal(t, spans["girder client"].SpanContext.SpanID, spans["otel server"].Parent.SpanID)
	assert.Equal(t, spans["otel client"].SpanContext.SpanID, spans["girder server"].Parent.SpanID)
	assert.Equal(t, spans["girder client"].SpanContext.TraceID, spans["girder server"].SpanContext.TraceID)

	// Nothing to extract: ctx unchanged; a repeated traceparent is invalid.
	bg := context.Background()
	assert.Equal(t, bg, prop.Extract(bg, propagation.HeaderCarrier(http.Header{})))
	twice := propagation.HeaderCarrier(http.Header{"Traceparent": {out.Get("Traceparent"), out.Get("Traceparent")}})
	assert.Equal(t, bg, prop.Extract(bg, twice))
	// A map carrier works too.
	m := propagation.MapCarrier{}
	prop.Inject(octx2, m)
	assert.Equal(t, out.Get("Traceparent"), m["traceparent"])
	assert.Equal(t, trace.SpanContextFromContext(octx2).TraceID(), trace.SpanContextFromContext(prop.Extract(bg, m)).TraceID())
}

func TestNilTracer(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	p := otelbridge.NewTracerProvider(nil)
	ctx, s := p.Tracer("x").Start(parent, "op", trace.WithAttributes(attribute.Int("a", 1)))
	assert.False(t, s.IsRecording())
	assert.Same(t, s, trace.SpanFromContext(ctx))
	assert.Equal(t, "v", ctx.Value(key{}), "the parent's values")
	cancel()
	assert.ErrorIs(t, ctx.Err(), context.Canceled, "the parent's cancellation")
	s.SetAttributes(attribute.Int("a", 1))
	s.AddEvent("e")
	s.RecordError(errors.New("x"))
	s.SetStatus(codes.Error, "x")
	s.End()
	assert.NotNil(t, ctx)
	assert.NotNil(t, s.TracerProvider())
}

// TestAllocations checks what a span started through the OpenTelemetry API costs on girder: the
// girder span, the OpenTelemetry span and the context holding both are one allocation, with or
// without start attributes (the options themselves, made by the caller, are not counted).
func TestAllocations(t *testing.T) {
	_, sampled, _ := newProvider(t, tracing.Options{Sampler: tracing.AlwaysSample()})
	_, never, _ := newProvider(t, tracing.Options{Sampler: tracing.NeverSample()})
	ctx := context.Background()
	attrs := trace.WithAttributes(attribute.Bool("key1", false), attribute.String("key2", "hello"),
		attribute.Int64("key3", 123), attribute.Float64("key4", 123.456))
	attrs2 := trace.WithAttributes(attribute.Bool("key5", false), attribute.String("key6", "hello"),
		attribute.Int64("key7", 123), attribute.Float64("key8", 123.456))
	kind := trace.WithSpanKind(trace.SpanKindServer)
	tests := []struct {
		name string
		p    trace.TracerProvider
		opts []trace.SpanStartOption
	}{
		{"sampled", sampled, nil},
		{"not sampled", never, nil},
		{"four attributes", sampled, []trace.SpanStartOption{attrs}},
		{"four attributes, not sampled", never, []trace.SpanStartOption{attrs}},
		{"four attributes and a kind", sampled, []trace.SpanStartOption{attrs, kind}},
		{"eight attributes and a kind, as otelhttp", sampled, []trace.SpanStartOption{attrs, kind, attrs2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := tt.p.Tracer("test")
			allocs := testing.AllocsPerRun(100, func() {
				_, s := tr.Start(ctx, "op", tt.opts...)
				s.End()
			})
			assert.LessOrEqual(t, allocs, 1.0)
		})
	}
}

// TestStartAttributeCounts checks every way Start hands attributes to girder: four or fewer
// alone, in options of four on the stack (with other options, or more than four), and beyond
// what the stack holds; with duplicated keys, the last value wins as in SetAttributes.
func TestStartAttributeCounts(t *testing.T) {
	_, p, exp := newProvider(t, tracing.Options{})
	tr := p.Tracer("lib")
	for _, n := range []int{1, 3, 4, 5, 8, 15, 16, 17, 40} {
		for _, withKind := range []bool{false, true} {
			kvs := make([]attribute.KeyValue, n)
			for i := range kvs {
				kvs[i] = attribute.Int(fmt.Sprintf("k%d", i), i)
			}
			opts := []trace.SpanStartOption{trace.WithAttributes(kvs[:n/2]...), trace.WithAttributes(kvs[n/2:]...)}
			if withKind {
				opts = append(opts, trace.WithSpanKind(trace.SpanKindServer))
			}
			exp.Reset()
			_, s := tr.Start(context.Background(), "x", opts...)
			s.End()
			got := exp.Spans()
			require.Len(t, got, 1)
			require.Len(t, got[0].Attributes, n, "n=%d kind=%v", n, withKind)
			for i, a := range got[0].Attributes {
				assert.Equal(t, fmt.Sprintf("k%d", i), a.Key)
				assert.True(t, tracing.Int(a.Key, i).Value.Equal(a.Value))
			}
			assert.Equal(t, withKind, got[0].Kind == tracing.SpanKindServer)
		}
	}
	exp.Reset()
	_, s := tr.Start(context.Background(), "x", trace.WithAttributes(attribute.Int("a", 1), attribute.Int("a", 2)),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.Int("a", 3)))
	s.End()
	require.Len(t, exp.Spans(), 1)
	require.Len(t, exp.Spans()[0].Attributes, 1)
	assert.True(t, tracing.Int("a", 3).Value.Equal(exp.Spans()[0].Attributes[0].Value))
}
