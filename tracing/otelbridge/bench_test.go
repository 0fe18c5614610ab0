package otelbridge_test

import (
	"context"
	"testing"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

func BenchmarkStartEnd(b *testing.B) {
	for _, bb := range []struct {
		name    string
		sampler tracing.Sampler
		attrs   bool
	}{
		{"sampled", tracing.AlwaysSample(), false},
		{"not sampled", tracing.NeverSample(), false},
		{"4 attributes", tracing.AlwaysSample(), true},
	} {
		b.Run(bb.name, func(b *testing.B) {
			tr, err := tracing.New(tracing.Options{Sampler: bb.sampler})
			if err != nil {
				b.Fatal(err)
			}
			otr := otelbridge.NewTracerProvider(tr).Tracer("bench")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				var span trace.Span
				if bb.attrs {
					_, span = otr.Start(ctx, "/foo", trace.WithAttributes(
						attribute.Bool("key1", false),
						attribute.String("key2", "hello"),
						attribute.Int64("key3", 123),
						attribute.Float64("key4", 123.456),
					))
				} else {
					_, span = otr.Start(ctx, "/foo")
				}
				span.End()
			}
		})
	}
}
