package lbprom_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/lb"
	"github.com/girder-go/girder/lb/lbprom"
)

// BenchmarkOnDone splits what the OnDone hook costs: the whole hook, and the histogram
// observation alone.
func BenchmarkOnDone(b *testing.B) {
	c, err := lbprom.New(lbprom.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hook", func(b *testing.B) {
		onDone := c.Hooks("bench").OnDone
		info := lb.DoneInfo{Backend: "backend-3", Latency: time.Millisecond}
		b.ReportAllocs()
		for b.Loop() {
			onDone(info)
		}
	})
	b.Run("observe", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x"})
		b.ReportAllocs()
		for b.Loop() {
			h.Observe(0.001)
		}
	})
}
