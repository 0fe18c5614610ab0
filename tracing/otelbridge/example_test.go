package otelbridge_test

import (
	"context"
	"fmt"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// OpenTelemetry instrumentation and girder's own spans in one trace.
func Example() {
	exp := &tracing.InMemoryExporter{}
	proc, _ := tracing.NewSyncProcessor(exp, nil)
	tracer, _ := tracing.New(tracing.Options{Name: "app", Processors: []tracing.Processor{proc}})
	provider := otelbridge.NewTracerProvider(tracer) // otel.SetTracerProvider(provider) in a service

	ctx, request := tracer.Start(context.Background(), "handle request")
	ctx, query := provider.Tracer("db-driver").Start(ctx, "SELECT users",
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String("db.system", "postgresql")))
	_, decode := tracer.Start(ctx, "decode rows")
	decode.End()
	query.End()
	request.End()

	spans := exp.Spans()
	names := map[tracing.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext.SpanID] = s.Name
	}
	for _, s := range spans {
		fmt.Printf("%-14s scope=%-9s kind=%-8s parent=%q\n", s.Name, s.Scope, s.Kind, names[s.Parent.SpanID])
	}
	// Output:
	// decode rows    scope=app       kind=internal parent="SELECT users"
	// SELECT users   scope=db-driver kind=client   parent="handle request"
	// handle request scope=app       kind=internal parent=""
}
