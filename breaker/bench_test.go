package breaker

import (
	"context"
	"testing"
	"time"
)

func ok(context.Context) (int, error) { return 1, nil }

func BenchmarkDoClosed(b *testing.B) {
	br, _ := New(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		Do(ctx, br, ok)
	}
}

func BenchmarkDoClosedTimeWindow(b *testing.B) {
	br, _ := New(Options{WindowDuration: time.Minute})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		Do(ctx, br, ok)
	}
}

func BenchmarkAllowClosed(b *testing.B) {
	br, _ := New(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		done, _ := br.Allow(ctx)
		done(nil)
	}
}

func BenchmarkDoOpen(b *testing.B) {
	br, _ := New(Options{})
	br.ForceOpen()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		Do(ctx, br, ok)
	}
}

func BenchmarkDoClosedParallel(b *testing.B) {
	br, _ := New(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			Do(ctx, br, ok)
		}
	})
}
