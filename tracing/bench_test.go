package tracing

import (
	"context"
	"net/http"
	"testing"
)

type discardProcessor struct{}

func (discardProcessor) OnEnd(*Span)                      {}
func (discardProcessor) ForceFlush(context.Context) error { return nil }
func (discardProcessor) Shutdown(context.Context) error   { return nil }

func BenchmarkStartEndSampled(b *testing.B) {
	tr, _ := New(Options{Sampler: AlwaysSample()})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "op")
		s.End()
	}
}

func BenchmarkStartEndNotSampled(b *testing.B) {
	tr, _ := New(Options{Sampler: NeverSample()})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "op")
		s.End()
	}
}

func BenchmarkStartEndFourAttributes(b *testing.B) {
	tr, _ := New(Options{Sampler: AlwaysSample()})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "op", WithAttributes(
			String("http.request.method", "GET"),
			String("url.path", "/users/42"),
			Int("http.response.status_code", 200),
			Bool("cache.hit", true),
		))
		s.End()
	}
}

func BenchmarkStartEndSetFourAttributes(b *testing.B) {
	tr, _ := New(Options{Sampler: AlwaysSample()})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "op")
		s.SetAttributes(Bool("key1", false), String("key2", "hello"), Int64("key3", 123), Float64("key4", 123.456))
		s.End()
	}
}

func BenchmarkStartEndBatch(b *testing.B) {
	bp, _ := NewBatchProcessor(discardExporter{}, BatchOptions{})
	defer bp.Close()
	tr, _ := New(Options{Sampler: AlwaysSample(), Processors: []Processor{bp}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "op")
		s.End()
	}
}

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []SpanData) error { return nil }
func (discardExporter) Shutdown(context.Context) error                { return nil }

func BenchmarkInject(b *testing.B) {
	tr, _ := New(Options{})
	ctx, _ := tr.Start(context.Background(), "op")
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		Inject(ctx, h)
	}
}

func BenchmarkExtract(b *testing.B) {
	h := http.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = Extract(ctx, h)
	}
}
