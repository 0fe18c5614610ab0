package tracingprom

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/internal/promopts"
	"github.com/girder-go/girder/tracing"
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// Buckets are the upper bounds, in seconds, of the export-duration histogram, in increasing
	// order; nil means prometheus.DefBuckets (5 ms to 10 s).
	Buckets []float64
	// ConstLabels are added to every series. Their names must not be labels of the collector's
	// own (processor, tracer, reason, result, decision).
	ConstLabels prometheus.Labels
}

// Validate reports every problem with o, or nil; New calls it.
func (o *Options) Validate() error {
	return errors.Join(promopts.Check("tracingprom", o.Buckets, o.ConstLabels, "processor", "tracer", "reason", "result", "decision", "le")...)
}

// Collector is a prometheus.Collector for the span export pipeline. Make one with New, feed it
// with Watch, OnExport, Sampler and Processor, and register it once.
type Collector struct {
	export  *prometheus.HistogramVec
	started *prometheus.CounterVec
	ended   *prometheus.CounterVec
	descs

	mu      sync.Mutex
	watched map[string]*tracing.BatchProcessor
}

// descs are the descriptions of the metrics Collect reads from the watched processors.
type descs struct {
	queued, dropped, exported, failed, batches, failedBatches *prometheus.Desc
}

func newDescs(constLabels prometheus.Labels) descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"processor"}, labels...), constLabels)
	}
	return descs{
		queued:        d("girder_tracing_queued_spans", "Spans waiting in the batch processor's queue for export."),
		dropped:       d("girder_tracing_dropped_spans_total", "Spans the batch processor did not queue, by reason (queue-full, shut-down).", "reason"),
		exported:      d("girder_tracing_exported_spans_total", "Spans in exports that succeeded."),
		failed:        d("girder_tracing_failed_spans_total", "Spans in exports that returned an error."),
		batches:       d("girder_tracing_export_batches_total", "Exports (ExportSpans calls) the batch processor made."),
		failedBatches: d("girder_tracing_failed_export_batches_total", "Exports that returned an error."),
	}
}

// New returns a Collector, or every problem with opts.
func New(opts Options) (*Collector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	buckets := opts.Buckets
	if buckets == nil {
		buckets = prometheus.DefBuckets
	}
	return &Collector{
		export: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "girder_tracing_export_duration_seconds",
			Help:        "Duration of the batch processor's exports, by result (success, failure).",
			Buckets:     slices.Clone(buckets),
			ConstLabels: opts.ConstLabels,
		}, []string{"processor", "result"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_tracing_started_spans_total",
			Help:        "Spans started, by the sampler's decision (drop, record-only, record-and-sample).",
			ConstLabels: opts.ConstLabels,
		}, []string{"tracer", "decision"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_tracing_ended_spans_total",
			Help:        "Sampled spans that ended and reached the processor.",
			ConstLabels: opts.ConstLabels,
		}, []string{"processor"}),
		descs:   newDescs(opts.ConstLabels),
		watched: map[string]*tracing.BatchProcessor{},
	}, nil
}

// OnExport returns a hook that observes each export's duration by result under the label
// processor=name; set it as tracing.BatchOptions.OnExport. It runs on the processor's goroutine,
// off the spans' path. To keep a hook of your own as well, call both from one function.
func (c *Collector) OnExport(name string) func(tracing.ExportInfo) {
	ok := c.export.WithLabelValues(name, "success")
	failed := c.export.WithLabelValues(name, "failure")
	return func(info tracing.ExportInfo) {
		if info.Err != nil {
			failed.Observe(info.Took.Seconds())
			return
		}
		ok.Observe(info.Took.Seconds())
	}
}

// sampler counts the decisions of the Sampler it wraps.
type sampler struct {
	s       tracing.Sampler
	decided [3]prometheus.Counter // by tracing.Decision
}

// ShouldSample asks the wrapped sampler and counts its decision.
func (s *sampler) ShouldSample(p tracing.SamplingParameters) tracing.Decision {
	d := s.s.ShouldSample(p)
	if int(d) < len(s.decided) {
		s.decided[d].Inc()
	}
	return d
}

// Sampler returns s wrapped so that every span started counts in
// girder_tracing_started_spans_total by decision under the label tracer=name; set it as
// tracing.Options.Sampler. A span start costs an interface call and a counter increment more,
// and the attributes given to Start, if any, are copied for the sampler (an allocation): the
// tracer answers its built-in samplers without a call, which the wrapper gives up. It fails when
// name is empty or s is nil.
func (c *Collector) Sampler(name string, s tracing.Sampler) (tracing.Sampler, error) {
	switch {
	case name == "":
		return nil, errors.New("tracingprom: Sampler: empty name")
	case s == nil:
		return nil, fmt.Errorf("tracingprom: Sampler %q: nil Sampler", name)
	}
	w := &sampler{s: s}
	for _, d := range []tracing.Decision{tracing.Drop, tracing.RecordOnly, tracing.RecordAndSample} {
		w.decided[d] = c.started.WithLabelValues(name, d.String())
	}
	return w, nil
}

// processor counts the spans that reach the Processor it wraps.
type processor struct {
	tracing.Processor
	ended prometheus.Counter
}

// OnEnd counts s and hands it on.
func (p *processor) OnEnd(s *tracing.Span) {
	p.ended.Inc()
	p.Processor.OnEnd(s)
}

// Processor returns p wrapped so that every span handed to it counts in
// girder_tracing_ended_spans_total under the label processor=name; put it in
// tracing.Options.Processors in p's place. Ending a span costs a counter increment more. It
// fails when name is empty or p is nil.
func (c *Collector) Processor(name string, p tracing.Processor) (tracing.Processor, error) {
	switch {
	case name == "":
		return nil, errors.New("tracingprom: Processor: empty name")
	case p == nil:
		return nil, fmt.Errorf("tracingprom: Processor %q: nil Processor", name)
	}
	return &processor{Processor: p, ended: c.ended.WithLabelValues(name)}, nil
}

// ForceFlush and Shutdown pass through; they are spelled out so that the wrapper is a
// Processor even if the interface grows.
func (p *processor) ForceFlush(ctx context.Context) error { return p.Processor.ForceFlush(ctx) }

// Shutdown shuts the wrapped processor down.
func (p *processor) Shutdown(ctx context.Context) error { return p.Processor.Shutdown(ctx) }

// Watch adds p, whose Stats are read at each scrape under the label processor=name. It fails
// when name is empty, p is nil, or name is already watched.
func (c *Collector) Watch(name string, p *tracing.BatchProcessor) error {
	switch {
	case name == "":
		return errors.New("tracingprom: Watch: empty name")
	case p == nil:
		return fmt.Errorf("tracingprom: Watch %q: nil BatchProcessor", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.watched[name]; ok {
		return fmt.Errorf("tracingprom: Watch %q: already watched", name)
	}
	c.watched[name] = p
	return nil
}

// Unwatch removes the processor watched as name; its series read at scrape time disappear from
// the next scrape. The counters and histogram the hooks and wrappers fed stay, as counters do.
func (c *Collector) Unwatch(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.watched, name)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queued, c.dropped, c.exported, c.failed, c.batches, c.failedBatches} {
		ch <- d
	}
	c.export.Describe(ch)
	c.started.Describe(ch)
	c.ended.Describe(ch)
}

// Collect implements prometheus.Collector: it reads every watched processor's Stats.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	watched := maps.Clone(c.watched)
	c.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, p := range watched {
		s := p.Stats()
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued), name)
		counter(c.dropped, s.Dropped-s.DroppedClosed, name, "queue-full")
		counter(c.dropped, s.DroppedClosed, name, "shut-down")
		counter(c.exported, s.Exported, name)
		counter(c.failed, s.Failed, name)
		counter(c.batches, s.Batches, name)
		counter(c.failedBatches, s.FailedBatches, name)
	}
	c.export.Collect(ch)
	c.started.Collect(ch)
	c.ended.Collect(ch)
}
