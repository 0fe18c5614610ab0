package main

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

func init() { register(tracingRows) }

const tracingPeer = "otel sdk v1.47.0"

// tracingRows compare girder's tracer with the OpenTelemetry SDK doing the same thing: neither
// has a span processor, so what is measured is starting, recording and ending a span.
func tracingRows(*Env) []Row {
	return []Row{
		{Package: "tracing", Op: "span start+end, sampled", Girder: tracingStartEnd(tracing.AlwaysSample(), false),
			Peer: tracingPeer, PeerFn: tracingOtelStartEnd(sdktrace.AlwaysSample(), false)},
		{Package: "tracing", Op: "span start+end, not sampled", Girder: tracingStartEnd(tracing.NeverSample(), false),
			Peer: tracingPeer, PeerFn: tracingOtelStartEnd(sdktrace.NeverSample(), false)},
		{Package: "tracing", Op: "span start+end, 4 attributes", Girder: tracingStartEnd(tracing.AlwaysSample(), true),
			Peer: tracingPeer, PeerFn: tracingOtelStartEnd(sdktrace.AlwaysSample(), true)},
		{Package: "tracing", Op: "OTel API: span start+end, sampled", Girder: tracingBridgeStartEnd(tracing.AlwaysSample(), false),
			Peer: tracingPeer, PeerFn: tracingOtelAPIStartEnd(sdktrace.AlwaysSample(), false)},
		{Package: "tracing", Op: "OTel API: span start+end, not sampled", Girder: tracingBridgeStartEnd(tracing.NeverSample(), false),
			Peer: tracingPeer, PeerFn: tracingOtelAPIStartEnd(sdktrace.NeverSample(), false)},
		{Package: "tracing", Op: "OTel API: span start+end, 4 attributes", Girder: tracingBridgeStartEnd(tracing.AlwaysSample(), true),
			Peer: tracingPeer, PeerFn: tracingOtelAPIStartEnd(sdktrace.AlwaysSample(), true)},
		{Package: "tracing", Op: "otelhttp handler round trip", Girder: tracingOtelhttp(func() oteltrace.TracerProvider {
			tr, _ := tracing.New(tracing.Options{Sampler: tracing.AlwaysSample()})
			return otelbridge.NewTracerProvider(tr)
		}), Peer: tracingPeer + ", otelhttp v0.72.0", PeerFn: tracingOtelhttp(func() oteltrace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		})},
		{Package: "tracing", Op: "OTel API floor: the caller's trace.WithAttributes, 4 attributes", Girder: tracingFloorAttrs},
		{Package: "tracing", Op: "OTel API floor: new IDs in a new context holding a span, one 80-byte allocation", Girder: tracingFloorContext},
		{Package: "tracing", Op: "otelhttp floor: the round trip on a no-op TracerProvider", Girder: tracingOtelhttp(func() oteltrace.TracerProvider {
			return tracenoop.NewTracerProvider()
		})},
		{Package: "tracing", Op: "W3C inject", Girder: tracingInject, Peer: tracingPeer, PeerFn: tracingOtelInject},
		{Package: "tracing", Op: "W3C extract", Girder: tracingExtract, Peer: tracingPeer, PeerFn: tracingOtelExtract},
	}
}

func tracingStartEnd(s tracing.Sampler, attrs bool) func(*testing.B) {
	return func(b *testing.B) {
		tr, err := tracing.New(tracing.Options{Sampler: s})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for b.Loop() {
			_, span := tr.Start(ctx, "/foo")
			if attrs {
				span.SetAttributes(
					tracing.Bool("key1", false),
					tracing.String("key2", "hello"),
					tracing.Int64("key3", 123),
					tracing.Float64("key4", 123.456),
				)
			}
			span.End()
		}
	}
}

func tracingOtelStartEnd(s sdktrace.Sampler, attrs bool) func(*testing.B) {
	return func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s))
		defer tp.Shutdown(context.Background())
		tr := tp.Tracer("bench")
		ctx := context.Background()
		for b.Loop() {
			_, span := tr.Start(ctx, "/foo")
			if attrs {
				span.SetAttributes(
					attribute.Bool("key1", false),
					attribute.String("key2", "hello"),
					attribute.Int64("key3", 123),
					attribute.Float64("key4", 123.456),
				)
			}
			span.End()
		}
	}
}

// tracingAPIStartEnd starts and ends spans through the OpenTelemetry API of tp, with four
// attributes given at start when attrs is set, as instrumentation libraries give them.
func tracingAPIStartEnd(b *testing.B, tp oteltrace.TracerProvider, attrs bool) {
	tr := tp.Tracer("bench")
	ctx := context.Background()
	for b.Loop() {
		var span oteltrace.Span
		if attrs {
			_, span = tr.Start(ctx, "/foo", oteltrace.WithAttributes(
				attribute.Bool("key1", false),
				attribute.String("key2", "hello"),
				attribute.Int64("key3", 123),
				attribute.Float64("key4", 123.456),
			))
		} else {
			_, span = tr.Start(ctx, "/foo")
		}
		span.End()
	}
}

// Sinks of the floor rows: written, never read.
var (
	tracingSinkOpt oteltrace.SpanStartOption //lint:ignore U1000 a sink, written on purpose
	tracingSinkCtx context.Context           //lint:ignore U1000 a sink, written on purpose
)

// tracingFloorAttrs is what the caller of a 4-attribute start pays before any tracer runs: the
// attribute values and the option holding them. Both sides of the 4-attribute OTel API row pay
// it, so no implementation can be faster than it there.
func tracingFloorAttrs(b *testing.B) {
	for b.Loop() {
		tracingSinkOpt = oteltrace.WithAttributes(
			attribute.Bool("key1", false),
			attribute.String("key2", "hello"),
			attribute.Int64("key3", 123),
			attribute.Float64("key4", 123.456),
		)
	}
}

// tracingFloorCtx is a context and the span it holds in one object, as girder's bridge makes
// them: the parent context, the interface the OTel API has every span embed, and what crosses
// process boundaries (the IDs, the trace state, the flags). 80 bytes.
type tracingFloorCtx struct {
	context.Context
	embedded.Span
	traceID oteltrace.TraceID
	spanID  oteltrace.SpanID
	state   string
	flags   oteltrace.TraceFlags
}

// tracingFloorContext is the least a Start through the OTel API can do even for a span that is
// not sampled: draw the IDs of a new trace (16 random bytes; the span ID can be derived from
// them) and return a new context holding a span that carries them, one allocation.
func tracingFloorContext(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		c := &tracingFloorCtx{Context: ctx, state: "", flags: 0} // a root span's: no trace state, not sampled
		binary.BigEndian.PutUint64(c.traceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(c.traceID[8:], rand.Uint64())
		copy(c.spanID[:], c.traceID[4:12])
		tracingSinkCtx = c
	}
}

func tracingBridgeStartEnd(s tracing.Sampler, attrs bool) func(*testing.B) {
	return func(b *testing.B) {
		tr, err := tracing.New(tracing.Options{Sampler: s})
		if err != nil {
			b.Fatal(err)
		}
		tracingAPIStartEnd(b, otelbridge.NewTracerProvider(tr), attrs)
	}
}

func tracingOtelAPIStartEnd(s sdktrace.Sampler, attrs bool) func(*testing.B) {
	return func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s))
		defer tp.Shutdown(context.Background())
		tracingAPIStartEnd(b, tp, attrs)
	}
}

// tracingOtelhttp serves one request in process through an otelhttp-wrapped handler recording
// into newProvider's spans, the request carrying a remote traceparent.
func tracingOtelhttp(newProvider func() oteltrace.TracerProvider) func(*testing.B) {
	return func(b *testing.B) {
		h := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}), "GET /foo", otelhttp.WithTracerProvider(newProvider()), otelhttp.WithPropagators(otelbridge.TraceContext{}),
			otelhttp.WithMeterProvider(noop.NewMeterProvider()))
		req := httptest.NewRequest(http.MethodGet, "/foo", nil)
		req.Header = tracingRemoteHeader()
		for b.Loop() {
			h.ServeHTTP(discardWriter{}, req)
		}
	}
}

// discardWriter is an http.ResponseWriter that keeps nothing.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

const (
	tracingTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracingTracestate  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

func tracingRemoteHeader() http.Header {
	h := http.Header{}
	h.Set("traceparent", tracingTraceparent)
	h.Set("tracestate", tracingTracestate)
	return h
}

func tracingInject(b *testing.B) {
	ctx := tracing.Extract(context.Background(), tracingRemoteHeader())
	h := http.Header{}
	for b.Loop() {
		tracing.Inject(ctx, h)
	}
}

func tracingOtelInject(b *testing.B) {
	prop := propagation.TraceContext{}
	ctx := prop.Extract(context.Background(), propagation.HeaderCarrier(tracingRemoteHeader()))
	h := http.Header{}
	for b.Loop() {
		prop.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

func tracingExtract(b *testing.B) {
	h := tracingRemoteHeader()
	ctx := context.Background()
	for b.Loop() {
		if !tracing.SpanContextFromContext(tracing.Extract(ctx, h)).IsValid() {
			b.Fatal("extract failed")
		}
	}
}

func tracingOtelExtract(b *testing.B) {
	prop := propagation.TraceContext{}
	h := propagation.HeaderCarrier(tracingRemoteHeader())
	ctx := context.Background()
	for b.Loop() {
		if !oteltrace.SpanContextFromContext(prop.Extract(ctx, h)).IsValid() {
			b.Fatal("extract failed")
		}
	}
}
