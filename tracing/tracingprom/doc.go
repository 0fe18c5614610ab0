// Package tracingprom exports the health of tracing's span export pipeline as Prometheus
// metrics: spans started by sampling decision, spans ended, queued, dropped by reason, exported
// and failed, export batches and errors, and an export-duration histogram.
//
// One Collector serves every tracer and processor of a process, told apart by "tracer" and
// "processor" labels. Its inputs:
//
//   - Watch registers a *tracing.BatchProcessor whose Stats Collect reads at scrape time:
//     nothing is added to ending a span for these.
//   - OnExport returns a tracing.BatchOptions.OnExport hook that observes each export's
//     duration by result. It runs on the processor's own goroutine, once per batch, off the
//     spans' path; with it the processor reads the clock twice per export.
//   - Sampler wraps the tracer's sampler so that each span started counts by decision; it
//     costs each span start an interface call and a counter increment, and a span started with
//     attributes a copy of them for the sampler.
//   - Processor wraps a processor so that each span handed to it counts as ended; it costs
//     each sampled span's end a counter increment.
//
// Wiring a tracer that exports over OTLP:
//
//	c, err := tracingprom.New(tracingprom.Options{})
//	bp, err := tracing.NewBatchProcessor(otlp, tracing.BatchOptions{OnExport: c.OnExport("otlp")})
//	err = c.Watch("otlp", bp)
//	p, err := c.Processor("otlp", bp)
//	s, err := c.Sampler("api", tracing.ParentBased(tracing.TraceIDRatio(0.1)))
//	tr, err := tracing.New(tracing.Options{Sampler: s, Processors: []tracing.Processor{p}})
//	prometheus.MustRegister(c)
//
// # Metrics
//
// Read at scrape time from the watched batch processors:
//
//	girder_tracing_queued_spans{processor}                 gauge: waiting for export
//	girder_tracing_dropped_spans_total{processor, reason}  reason: queue-full, shut-down
//	girder_tracing_exported_spans_total{processor}         in exports that succeeded
//	girder_tracing_failed_spans_total{processor}           in exports that returned an error
//	girder_tracing_export_batches_total{processor}         exports made
//	girder_tracing_failed_export_batches_total{processor}  exports that returned an error
//
// Fed by the hook and the wrappers:
//
//	girder_tracing_export_duration_seconds{processor, result}  result: success, failure
//	girder_tracing_started_spans_total{tracer, decision}       decision: drop, record-only, record-and-sample
//	girder_tracing_ended_spans_total{processor}
//
// Every span handed to a batch processor ends up dropped, exported or failed, or is still
// queued, so the share of spans lost on the way is
//
//	(sum by (processor) (rate(girder_tracing_dropped_spans_total[5m])) + sum by (processor) (rate(girder_tracing_failed_spans_total[5m])))
//	  / sum by (processor) (rate(girder_tracing_ended_spans_total[5m]))
//
// and a queue near its MaxQueueSize (girder_tracing_queued_spans) warns before spans are
// dropped. No label grows with traffic: span names are never labels.
//
// # OpenTelemetry
//
// Programs that export OpenTelemetry metrics use this collector through OpenTelemetry's
// Prometheus bridge (go.opentelemetry.io/contrib/bridges/prometheus), which reads a Prometheus
// Gatherer into an OpenTelemetry MeterProvider; girder has no separate OpenTelemetry adapters.
//
// A Collector is safe for concurrent use, and so are the hook and the wrappers it returns.
package tracingprom
