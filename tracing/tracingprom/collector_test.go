package tracingprom_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/tracingprom"
)

// gatedExporter waits for gate (when set) and fails every batch holding a span named "bad".
type gatedExporter struct{ gate chan struct{} }

func (e *gatedExporter) ExportSpans(ctx context.Context, spans []tracing.SpanData) error {
	if e.gate != nil {
		select {
		case <-e.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, s := range spans {
		if s.Name == "bad" {
			return errors.New("collector refused the batch")
		}
	}
	return nil
}

func (e *gatedExporter) Shutdown(context.Context) error { return nil }

// TestCollector drives a pipeline through known events and checks every scraped value. The
// sampler records "rec" without sampling it, drops "skip" and samples the rest. With a queue of
// 4 and batches of 2: the first 2 spans go to an export held at a gate, 4 more fill the queue,
// 1 more is dropped; the gate opens and the 3 batches export, the one of two "bad" spans
// failing; 1 span ended after Shutdown is dropped. Time stands still in the bubble, so every
// export takes 0 s.
func TestCollector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := tracingprom.New(tracingprom.Options{Buckets: []float64{0.1, 1}})
		require.NoError(t, err)
		exp := &gatedExporter{gate: make(chan struct{})}
		bp, err := tracing.NewBatchProcessor(exp, tracing.BatchOptions{MaxQueueSize: 4, MaxBatchSize: 2,
			BatchTimeout: 1 << 40, OnExport: c.OnExport("otlp")})
		require.NoError(t, err)
		require.NoError(t, c.Watch("otlp", bp))
		p, err := c.Processor("otlp", bp)
		require.NoError(t, err)
		s, err := c.Sampler("app", tracing.SamplerFunc(func(p tracing.SamplingParameters) tracing.Decision {
			switch p.Name {
			case "rec":
				return tracing.RecordOnly
			case "skip":
				return tracing.Drop
			}
			return tracing.RecordAndSample
		}))
		require.NoError(t, err)
		tr, err := tracing.New(tracing.Options{Sampler: s, Processors: []tracing.Processor{p}})
		require.NoError(t, err)
		end := func(names ...string) {
			for _, n := range names {
				_, sp := tr.Start(context.Background(), n)
				sp.End()
			}
		}
		end("ok", "ok")
		synctest.Wait() // the processor took both and waits at the gate
		end("bad", "bad", "ok", "ok", "ok", "rec", "skip")

		const head = `
# HELP girder_tracing_dropped_spans_total Spans the batch processor did not queue, by reason (queue-full, shut-down).
# TYPE girder_tracing_dropped_spans_total counter
girder_tracing_dropped_spans_total{processor="otlp",reason="queue-full"} 1
girder_tracing_dropped_spans_total{processor="otlp",reason="shut-down"} %d
# HELP girder_tracing_ended_spans_total Sampled spans that ended and reached the processor.
# TYPE girder_tracing_ended_spans_total counter
girder_tracing_ended_spans_total{processor="otlp"} %d
# HELP girder_tracing_export_batches_total Exports (ExportSpans calls) the batch processor made.
# TYPE girder_tracing_export_batches_total counter
girder_tracing_export_batches_total{processor="otlp"} %d
# HELP girder_tracing_exported_spans_total Spans in exports that succeeded.
# TYPE girder_tracing_exported_spans_total counter
girder_tracing_exported_spans_total{processor="otlp"} %d
# HELP girder_tracing_failed_export_batches_total Exports that returned an error.
# TYPE girder_tracing_failed_export_batches_total counter
girder_tracing_failed_export_batches_total{processor="otlp"} %d
# HELP girder_tracing_failed_spans_total Spans in exports that returned an error.
# TYPE girder_tracing_failed_spans_total counter
girder_tracing_failed_spans_total{processor="otlp"} %d
# HELP girder_tracing_queued_spans Spans waiting in the batch processor's queue for export.
# TYPE girder_tracing_queued_spans gauge
girder_tracing_queued_spans{processor="otlp"} %d
# HELP girder_tracing_started_spans_total Spans started, by the sampler's decision (drop, record-only, record-and-sample).
# TYPE girder_tracing_started_spans_total counter
girder_tracing_started_spans_total{decision="drop",tracer="app"} 1
girder_tracing_started_spans_total{decision="record-and-sample",tracer="app"} %d
girder_tracing_started_spans_total{decision="record-only",tracer="app"} 1
`
		const hist = `# HELP girder_tracing_export_duration_seconds Duration of the batch processor's exports, by result (success, failure).
# TYPE girder_tracing_export_duration_seconds histogram
girder_tracing_export_duration_seconds_bucket{processor="otlp",result="failure",le="0.1"} %[1]d
girder_tracing_export_duration_seconds_bucket{processor="otlp",result="failure",le="1"} %[1]d
girder_tracing_export_duration_seconds_bucket{processor="otlp",result="failure",le="+Inf"} %[1]d
girder_tracing_export_duration_seconds_sum{processor="otlp",result="failure"} 0
girder_tracing_export_duration_seconds_count{processor="otlp",result="failure"} %[1]d
girder_tracing_export_duration_seconds_bucket{processor="otlp",result="success",le="0.1"} %[2]d
girder_tracing_export_duration_seconds_bucket{processor="otlp",result="success",le="1"} %[2]d
girder_tracing_export_duration_seconds_bucket{processor="otlp",result="success",le="+Inf"} %[2]d
girder_tracing_export_duration_seconds_sum{processor="otlp",result="success"} 0
girder_tracing_export_duration_seconds_count{processor="otlp",result="success"} %[2]d
`
		// At the gate: no export has returned, so the histogram has no observation.
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(sprintf(head, 0, 7, 0, 0, 0, 0, 4, 7)+sprintf(hist, 0, 0))))

		close(exp.gate)
		synctest.Wait()
		require.NoError(t, bp.Shutdown(context.Background()))
		end("ok")
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(sprintf(head, 1, 8, 3, 4, 1, 2, 0, 8)+sprintf(hist, 1, 2))))

		c.Unwatch("otlp")
		assert.Zero(t, testutil.CollectAndCount(c, "girder_tracing_queued_spans"), "an unwatched processor leaves the scrape")
		assert.Equal(t, 1, testutil.CollectAndCount(c, "girder_tracing_ended_spans_total"), "counters stay")
	})
}

// TestLint checks the metric names, units and help texts with client_golang's linter, with
// every metric present, and that the collector registers.
func TestLint(t *testing.T) {
	c, err := tracingprom.New(tracingprom.Options{ConstLabels: prometheus.Labels{"cluster": "eu"}})
	require.NoError(t, err)
	bp, err := tracing.NewBatchProcessor(&gatedExporter{}, tracing.BatchOptions{OnExport: c.OnExport("p")})
	require.NoError(t, err)
	require.NoError(t, c.Watch("p", bp))
	p, err := c.Processor("p", bp)
	require.NoError(t, err)
	s, err := c.Sampler("t", tracing.AlwaysSample())
	require.NoError(t, err)
	tr, err := tracing.New(tracing.Options{Sampler: s, Processors: []tracing.Processor{p}})
	require.NoError(t, err)
	_, sp := tr.Start(context.Background(), "op")
	sp.End()
	require.NoError(t, tr.Shutdown(context.Background()))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
	require.NoError(t, prometheus.NewPedanticRegistry().Register(c))
}

func TestErrors(t *testing.T) {
	_, err := tracingprom.New(tracingprom.Options{ConstLabels: prometheus.Labels{"processor": "x", "cluster": "eu"}})
	assert.EqualError(t, err, `tracingprom: ConstLabels: "processor" is a label of the collector's own`)
	_, err = tracingprom.New(tracingprom.Options{Buckets: []float64{2, 1}})
	assert.EqualError(t, err, "tracingprom: Buckets[1] 1 does not exceed Buckets[0] 2")
	c, err := tracingprom.New(tracingprom.Options{})
	require.NoError(t, err)
	bp, err := tracing.NewBatchProcessor(&gatedExporter{}, tracing.BatchOptions{})
	require.NoError(t, err)
	defer bp.Close()
	assert.EqualError(t, c.Watch("", bp), "tracingprom: Watch: empty name")
	assert.EqualError(t, c.Watch("x", nil), `tracingprom: Watch "x": nil BatchProcessor`)
	require.NoError(t, c.Watch("a", bp))
	assert.EqualError(t, c.Watch("a", bp), `tracingprom: Watch "a": already watched`)
	_, err = c.Sampler("", tracing.AlwaysSample())
	assert.EqualError(t, err, "tracingprom: Sampler: empty name")
	_, err = c.Sampler("x", nil)
	assert.EqualError(t, err, `tracingprom: Sampler "x": nil Sampler`)
	_, err = c.Processor("x", nil)
	assert.EqualError(t, err, `tracingprom: Processor "x": nil Processor`)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
