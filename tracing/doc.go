// Package tracing records spans — timed, named operations with attributes, events and a status —
// and passes trace context between services with W3C Trace Context, so that one request can be
// followed through every service it touches. It uses the standard library only, and exports to
// any OpenTelemetry collector (or Jaeger, or Tempo) over OTLP/HTTP JSON.
//
// # Spans
//
// A Tracer starts spans; the returned context carries the span, so a Start with that context
// makes a child:
//
//	ctx, span := tracer.Start(ctx, "load user", tracing.WithAttributes(tracing.Int("user.id", id)))
//	defer span.End()
//
// Trace IDs (16 bytes) and span IDs (8 bytes) come from the runtime's per-thread random source.
// Starting and ending a sampled span costs one allocation of 128 bytes (the span is also the
// context Start returns; attributes given to Start, up to eight, share the allocation), two
// monotonic clock reads and one compare-and-swap; a span that is not sampled costs one 64-byte
// allocation, takes no lock and reads no clock. Attributes set after Start cost one more
// allocation. StartWith starts a span with a value of the caller's type in the same allocation,
// for a bridge to another tracing API (tracing/otelbridge). Limits bound attributes, events,
// links and value lengths per span; what goes over is dropped and counted. Span.Context returns
// the context that holds a span, for code that was handed the span alone.
//
// Spans carry what OpenTelemetry's spans carry: attributes of every OpenTelemetry type (string,
// int64, float64, bool and slices of each), events (AddEvent, AddEventAt, RecordError), links
// (WithLinks, AddLink), a status and a kind; WithStartTime and EndAt give times known after the
// fact, from years in the past to the future. Tracer.WithScope names the instrumentation scope
// of another library's spans. Package tracing/otelbridge makes a Tracer an OpenTelemetry
// TracerProvider, so OpenTelemetry instrumentation records into it.
//
// # Across processes
//
// Inject writes traceparent and tracestate into an http.Header, a MapCarrier (the string fields
// of a message) or any Carrier; Extract reads them back. Parsing follows the specification:
// versions above 00 are read forward-compatibly, version ff, all-zero IDs and malformed fields
// are rejected, and tracestate is passed on within its limits (32 members, 512 characters) with
// Level 2's key grammar (vendor keys with '@', keys of up to 256 characters); a key given twice
// keeps its first member. The official W3C test suite passes 41 of 41 at Level 2, strict
// (tracing/internal/w3cservice is the service it runs against, in CI).
// Tracer.Middleware does this for a server and Tracer.Transport for a client, whose span lasts
// until the response body is read or closed.
//
// # Sampling
//
// AlwaysSample, NeverSample, TraceIDRatio and ParentBased. TraceIDRatio uses OpenTelemetry's
// algorithm, so a girder service and an OpenTelemetry service configured with the same fraction
// keep or drop the same traces. The default is ParentBased(AlwaysSample()).
//
// # Processing and export
//
// A sampled span goes, when it ends, to the Tracer's processors. NewBatchProcessor is the one for
// services: a bounded lock-free queue, exports of up to MaxBatchSize spans at least every
// BatchTimeout from one goroutine, an exact count of dropped spans, and ForceFlush and Shutdown
// that export what is queued. NewSyncProcessor exports on the ending goroutine, for tests and
// tools. Exporters: InMemoryExporter (tests), JSONExporter (JSON lines to an io.Writer) and
// OTLPExporter (OTLP/HTTP JSON with retries).
//
// # Concurrency and lifecycle
//
// Tracer, Span, processors and exporters are safe for concurrent use. The zero Tracer works (the
// default sampler, no processors); a nil *Tracer and a nil *Span do nothing. A BatchProcessor
// runs one goroutine until Shutdown or Close; Tracer.Shutdown shuts every processor down.
package tracing
