// Package eventbusprom exports event buses' queues, outcomes and handling durations as
// Prometheus metrics, for the in-process eventbus and for its Redis Streams transport.
//
// One Collector serves every bus of a process, told apart by a "bus" label. It has three inputs:
//
//   - Watch registers an *eventbus.Bus whose subscriptions' Stats Collect reads at scrape time
//     (subscriptions made after Watch too): nothing is added to Publish or to the handlers.
//   - WatchStreams does the same for a *redisstream.Transport's consumers, under a
//     "transport" label.
//   - Hooks returns eventbus.Hooks that count publications and drops by reason and observe each
//     handler call's duration in a histogram; set them in eventbus.Options.Hooks or
//     redisstream.Options.Hooks. With OnDeliver or OnFail set, the bus reads the clock around
//     each handler call (it does not without them); a publication costs a map read and a
//     counter increment. internal/bench measures Publish with and without them.
//
// Wiring one bus:
//
//	c, err := eventbusprom.New(eventbusprom.Options{})
//	bus, err := eventbus.New(eventbus.Options{Hooks: c.Hooks("app")})
//	err = c.Watch("app", bus)
//	prometheus.MustRegister(c)
//
// # Metrics
//
// Read at scrape time from the watched buses' subscriptions; subscriptions that share a topic
// and a name add up:
//
//	girder_eventbus_delivered_events_total{bus, topic, subscriber}      handler returned nil
//	girder_eventbus_failed_attempts_total{bus, topic, subscriber}       failed handler calls, retries included
//	girder_eventbus_retried_attempts_total{bus, topic, subscriber}      handler calls after the first for an event
//	girder_eventbus_dead_lettered_events_total{bus, topic, subscriber}  events given up on after the last attempt
//	girder_eventbus_dropped_events_total{bus, topic, subscriber}        events discarded or rejected, the queue full
//	girder_eventbus_overflowed_events_total{bus, topic, subscriber}     events queued past the bound by handlers
//	girder_eventbus_undelivered_events_total{bus, topic, subscriber}    events left when Close or Unsubscribe timed out
//	girder_eventbus_queued_events{bus, topic, subscriber}               gauge: accepted, not yet handled
//	girder_eventbus_queued_events_peak{bus, topic, subscriber}          gauge: the most ever waiting at once
//
// Read at scrape time from the watched transports' consumers:
//
//	girder_redisstream_delivered_events_total{transport, stream, group, consumer}
//	girder_redisstream_failed_attempts_total{transport, stream, group, consumer}
//	girder_redisstream_dead_lettered_events_total{transport, stream, group, consumer}
//	girder_redisstream_left_pending_events_total{transport, stream, group, consumer}
//
// Fed by the hooks (the subscriber of a Redis Streams consumer is "group/consumer"):
//
//	girder_eventbus_published_events_total{bus, topic}
//	girder_eventbus_drops_total{bus, topic, subscriber, reason}            reason: drop-newest, drop-oldest, rejected, closed, overflow
//	girder_eventbus_handling_duration_seconds{bus, topic, subscriber, result}  result: delivered, failed
//
// A subscriber falling behind, its p99 handling time, and its failure ratio:
//
//	max by (topic, subscriber) (girder_eventbus_queued_events)
//	histogram_quantile(0.99, sum by (subscriber, le) (rate(girder_eventbus_handling_duration_seconds_bucket[5m])))
//	sum by (subscriber) (rate(girder_eventbus_failed_attempts_total[5m]))
//	  / sum by (subscriber) (rate(girder_eventbus_failed_attempts_total[5m]) + rate(girder_eventbus_delivered_events_total[5m]))
//
// Topic and subscriber names are the program's own, not the events', so no label grows with
// traffic. The series of a subscription read at scrape time leave the scrape when it is
// unsubscribed (or its bus closed); a new one of the same name starts from zero, which rate
// and increase read as a counter reset.
//
// # OpenTelemetry
//
// Programs that export OpenTelemetry metrics use this collector through OpenTelemetry's
// Prometheus bridge (go.opentelemetry.io/contrib/bridges/prometheus), which reads a Prometheus
// Gatherer into an OpenTelemetry MeterProvider; girder has no separate OpenTelemetry adapters.
//
// A Collector is safe for concurrent use; Hooks may be called from any number of goroutines.
package eventbusprom
