package tracingprom_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/tracingprom"
)

func Example() {
	c, err := tracingprom.New(tracingprom.Options{})
	if err != nil {
		panic(err)
	}
	exp := &tracing.InMemoryExporter{} // an OTLPExporter in production
	bp, err := tracing.NewBatchProcessor(exp, tracing.BatchOptions{OnExport: c.OnExport("otlp")})
	if err != nil {
		panic(err)
	}
	if err := c.Watch("otlp", bp); err != nil {
		panic(err)
	}
	p, err := c.Processor("otlp", bp)
	if err != nil {
		panic(err)
	}
	s, err := c.Sampler("api", tracing.AlwaysSample())
	if err != nil {
		panic(err)
	}
	tr, err := tracing.New(tracing.Options{Sampler: s, Processors: []tracing.Processor{p}})
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c) // serve reg on /metrics with promhttp.HandlerFor

	for range 3 {
		_, span := tr.Start(context.Background(), "GET /users")
		span.End()
	}
	if err := tr.Shutdown(context.Background()); err != nil { // exports what is queued
		panic(err)
	}
	show(reg, "girder_tracing_started_spans_total", "girder_tracing_ended_spans_total",
		"girder_tracing_exported_spans_total", "girder_tracing_export_duration_seconds")
	// Output:
	// girder_tracing_ended_spans_total{processor="otlp"} 3
	// girder_tracing_export_duration_seconds{processor="otlp",result="failure"} count 0
	// girder_tracing_export_duration_seconds{processor="otlp",result="success"} count 1
	// girder_tracing_exported_spans_total{processor="otlp"} 3
	// girder_tracing_started_spans_total{decision="drop",tracer="api"} 0
	// girder_tracing_started_spans_total{decision="record-and-sample",tracer="api"} 3
	// girder_tracing_started_spans_total{decision="record-only",tracer="api"} 0
}

// show prints the named metrics of a scrape of reg: counters and gauges with their value,
// histograms with their count.
func show(reg *prometheus.Registry, names ...string) {
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if !slices.Contains(names, f.GetName()) {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			head := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				fmt.Println(head, m.GetCounter().GetValue())
			case m.Gauge != nil:
				fmt.Println(head, m.GetGauge().GetValue())
			case m.Histogram != nil:
				fmt.Println(head, "count", m.GetHistogram().GetSampleCount())
			}
		}
	}
}
