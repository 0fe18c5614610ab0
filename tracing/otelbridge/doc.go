// Package otelbridge makes a girder tracing.Tracer an OpenTelemetry TracerProvider, so that a
// service keeps its OpenTelemetry instrumentation (otelhttp, go-redis's redisotel, otelpgx, gRPC)
// and records it through girder's samplers, processors and exporters:
//
//	provider := otelbridge.NewTracerProvider(tracer)
//	otel.SetTracerProvider(provider)
//	otel.SetTextMapPropagator(otelbridge.TraceContext{})
//
// # What is carried over
//
// Spans started through the OpenTelemetry API become girder spans: attributes of every
// OpenTelemetry type, events (with their timestamps), links, status, span kind,
// trace.WithTimestamp at start and end, RecordError (with a stack trace on request),
// IsRecording, SetName, and a SpanContext with its trace state. The tracer name becomes the
// span's instrumentation scope (tracing.Tracer.WithScope). An attribute of the invalid type is
// dropped.
//
// # One trace across both APIs
//
// The contexts the two APIs return hold each other's span: a girder span started under an
// OpenTelemetry span in ctx is its child, an OpenTelemetry span started under a girder span is
// its child, and trace.SpanFromContext and tracing.SpanFromContext both see the innermost span
// of either. A span that reached ctx only through trace.ContextWithSpan or
// trace.ContextWithSpanContext (another SDK's span, a span context built by hand) is the parent
// of spans started through this provider; girder's own Start, which knows nothing of
// OpenTelemetry, sees only the spans this package's Start and TraceContext.Extract put there.
//
// TraceContext propagates W3C Trace Context with girder's parser, tracestate Level 2 included,
// so headers injected by either API are read by the other; it passes the W3C suite 41 of 41 at
// Level 2, strict, as girder's own Inject and Extract do.
//
// # Cost
//
// Starting and ending a span costs what a girder span costs, in the same single allocation: the
// span the OpenTelemetry API sees, which is also the context Start returns, is allocated with the
// girder span (tracing.StartWith), 16 bytes more: 80 bytes for a span that is not sampled, 144
// for one that is. Attributes given at start are read from
// trace.WithAttributes in place and converted on the stack, up to sixteen of them; options other
// than attributes are applied by OpenTelemetry's own config without copying the attributes.
//
// # Concurrency
//
// The provider, its tracers and spans are safe for concurrent use. The core tracing package
// does not depend on OpenTelemetry; only this package does.
package otelbridge
