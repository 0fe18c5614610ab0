package tracing_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/girder-go/girder/tracing"
)

func Example() {
	exp := &tracing.InMemoryExporter{}
	bp, err := tracing.NewBatchProcessor(exp, tracing.BatchOptions{})
	if err != nil {
		panic(err)
	}
	tracer, err := tracing.New(tracing.Options{Name: "shop", Processors: []tracing.Processor{bp}})
	if err != nil {
		panic(err)
	}

	ctx, order := tracer.Start(context.Background(), "place order", tracing.WithAttributes(tracing.Int("items", 3)))
	_, charge := tracer.Start(ctx, "charge card", tracing.WithSpanKind(tracing.SpanKindClient))
	charge.SetStatus(tracing.StatusError, "card declined")
	charge.End()
	order.End()

	_ = tracer.Shutdown(context.Background()) // flushes the batch processor
	for _, s := range exp.Spans() {
		child := s.Parent.SpanID == order.SpanContext().SpanID
		fmt.Printf("%s (%s) status=%s child-of-order=%v\n", s.Name, s.Kind, s.Status.Code, child)
	}
	// Output:
	// charge card (client) status=error child-of-order=true
	// place order (internal) status=unset child-of-order=false
}

func ExampleExtract() {
	incoming := http.Header{}
	incoming.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	incoming.Set("tracestate", "rojo=00f067aa0ba902b7")

	var tracer tracing.Tracer // the zero Tracer works: default sampler, no processors
	ctx := tracing.Extract(context.Background(), incoming)
	ctx, span := tracer.Start(ctx, "handle")
	defer span.End()

	outgoing := http.Header{}
	tracing.Inject(ctx, outgoing)
	sc := span.SpanContext()
	fmt.Println("trace:", sc.TraceID, "sampled:", sc.IsSampled())
	fmt.Println("traceparent starts:", outgoing.Get("traceparent")[:36])
	fmt.Println("tracestate:", outgoing.Get("tracestate"))
	// Output:
	// trace: 4bf92f3577b34da6a3ce929d0e0e4736 sampled: true
	// traceparent starts: 00-4bf92f3577b34da6a3ce929d0e0e4736-
	// tracestate: rojo=00f067aa0ba902b7
}

func ExampleTraceIDRatio() {
	sampler := tracing.TraceIDRatio(0.25)
	for _, hex := range []string{
		"00000000000000000000000000000001", // small last 8 bytes: kept
		"0000000000000000ffffffffffffffff", // large: dropped
	} {
		sc, _ := tracing.ParseTraceparent("00-" + hex + "-00f067aa0ba902b7-00")
		fmt.Println(hex, sampler.Sample(sc.TraceID))
	}
	// Output:
	// 00000000000000000000000000000001 true
	// 0000000000000000ffffffffffffffff false
}

func ExampleParseTraceState() {
	ts, err := tracing.ParseTraceState(" congo=t61rcWkgMzE , rojo=00f067aa0ba902b7")
	if err != nil {
		panic(err)
	}
	ts, _ = ts.Insert("girder", "x1")
	fmt.Println(ts)
	fmt.Println(ts.Get("rojo"), ts.Len())
	// Output:
	// girder=x1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7
	// 00f067aa0ba902b7 3
}

func ExampleBatchProcessor_Stats() {
	exp := &tracing.InMemoryExporter{}
	bp, _ := tracing.NewBatchProcessor(exp, tracing.BatchOptions{MaxQueueSize: 4, MaxBatchSize: 4})
	tracer, _ := tracing.New(tracing.Options{Processors: []tracing.Processor{bp}})
	for range 3 {
		_, span := tracer.Start(context.Background(), "work")
		span.End()
	}
	_ = bp.Close()
	_, late := tracer.Start(context.Background(), "after close")
	late.End()
	fmt.Printf("%+v\n", bp.Stats())
	// Output:
	// {Dropped:1 Exported:3 Failed:0 DroppedClosed:1 Batches:1 FailedBatches:0 Queued:0}
}

// A message carries the trace in its string fields: the publisher injects, the consumer in
// another process extracts and continues the same trace.
func ExampleMapCarrier() {
	var tracer tracing.Tracer
	ctx, publish := tracer.Start(context.Background(), "publish order.placed", tracing.WithSpanKind(tracing.SpanKindProducer))
	fields := tracing.MapCarrier{"order": "42"}
	tracing.Inject(ctx, fields)
	publish.End()

	// ... the message crosses a queue or a Redis stream ...

	ctx = tracing.Extract(context.Background(), fields)
	_, consume := tracer.Start(ctx, "handle order.placed", tracing.WithSpanKind(tracing.SpanKindConsumer))
	defer consume.End()
	fmt.Println("same trace:", consume.SpanContext().TraceID == publish.SpanContext().TraceID)
	fmt.Println("fields:", len(fields))
	// Output:
	// same trace: true
	// fields: 2
}

// bridgeSpan stands for the per-span object of a bridge to another tracing API.
type bridgeSpan struct {
	g     *tracing.Span
	owner string
}

func (b *bridgeSpan) End() { b.g.End() }

// A bridge to another tracing API keeps its own object per span in the span's allocation.
func ExampleStartWith() {
	exp := &tracing.InMemoryExporter{}
	sp, err := tracing.NewSyncProcessor(exp, nil)
	if err != nil {
		panic(err)
	}
	tracer, err := tracing.New(tracing.Options{Processors: []tracing.Processor{sp}})
	if err != nil {
		panic(err)
	}

	_, span, b := tracing.StartWith[bridgeSpan](tracer, context.Background(), "bridged")
	b.g, b.owner = span, "other API"
	b.End()
	fmt.Println(exp.Spans()[0].Name, "ended through the", b.owner)
	// Output: bridged ended through the other API
}

// A worker handed only a span, not the context it was started in, continues its trace through
// Span.Context.
func ExampleSpan_Context() {
	tracer, err := tracing.New(tracing.Options{Sampler: tracing.AlwaysSample()})
	if err != nil {
		panic(err)
	}
	_, job := tracer.Start(context.Background(), "import batch")
	done := make(chan struct{})
	go func(job *tracing.Span) { // a worker that receives the span alone
		defer close(done)
		_, row := tracer.Start(job.Context(), "import row")
		defer row.End()
		fmt.Println("same trace:", row.SpanContext().TraceID == job.SpanContext().TraceID)
	}(job)
	<-done
	job.End()
	// Output:
	// same trace: true
}
