package cache

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
)

const benchKeys = 1 << 10

func benchKeyset() []string {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
	}
	return keys
}

func newBenchCache(b *testing.B, refreshAhead time.Duration) (*Cache[string, string], []string) {
	b.Helper()
	mem, err := NewMemory(MemoryOptions[string, string]{MaxSize: 10 * benchKeys, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mem.Close() })
	c, err := New(Options[string, string]{
		Levels:       []Level[string, string]{{Store: mem, TTL: time.Hour}},
		Loader:       LoaderFunc[string, string](func(_ context.Context, k string) (string, error) { return k, nil }),
		RefreshAhead: refreshAhead,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	keys := benchKeyset()
	ctx := context.Background()
	for _, k := range keys {
		if _, err := c.Get(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	return c, keys
}

func BenchmarkCacheGetHit(b *testing.B) { benchGetHit(b, 0) }

// BenchmarkCacheGetHitRefreshAhead reads the entry's deadline too (otter's GetEntry).
func BenchmarkCacheGetHitRefreshAhead(b *testing.B) { benchGetHit(b, time.Minute) }

func benchGetHit(b *testing.B, refreshAhead time.Duration) {
	c, keys := newBenchCache(b, refreshAhead)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Get(ctx, keys[i&(benchKeys-1)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkOtterGetHit(b *testing.B) {
	o := otter.Must(&otter.Options[string, string]{MaximumSize: 10 * benchKeys, ExpiryCalculator: otter.ExpiryWriting[string, string](time.Hour)})
	b.Cleanup(func() { o.StopAllGoroutines() })
	keys := benchKeyset()
	for _, k := range keys {
		o.Set(k, k)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := o.GetIfPresent(keys[i&(benchKeys-1)]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkCacheGetHitParallel(b *testing.B) {
	c, keys := newBenchCache(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Get(ctx, keys[i&(benchKeys-1)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkOtterGetHitParallel(b *testing.B) {
	o := otter.Must(&otter.Options[string, string]{MaximumSize: 10 * benchKeys, ExpiryCalculator: otter.ExpiryWriting[string, string](time.Hour)})
	b.Cleanup(func() { o.StopAllGoroutines() })
	keys := benchKeyset()
	for _, k := range keys {
		o.Set(k, k)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := o.GetIfPresent(keys[i&(benchKeys-1)]); !ok {
				b.Error("miss")
				return
			}
			i++
		}
	})
}
