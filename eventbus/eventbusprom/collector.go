package eventbusprom

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/girder-go/girder/internal/promopts"
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// Buckets are the upper bounds, in seconds, of the handling-duration histogram, in
	// increasing order; nil means prometheus.DefBuckets (5 ms to 10 s).
	Buckets []float64
	// ConstLabels are added to every series. Their names must not be labels of the collector's
	// own (bus, topic, subscriber, result, reason, transport, stream, group, consumer).
	ConstLabels prometheus.Labels
}

// Validate reports every problem with o, or nil; New calls it.
func (o *Options) Validate() error {
	return errors.Join(promopts.Check("eventbusprom", o.Buckets, o.ConstLabels, "bus", "topic", "subscriber", "result", "reason", "transport", "stream", "group", "consumer", "le")...)
}

// BusSource is what Watch reads: an *eventbus.Bus.
type BusSource interface {
	Subscriptions() []*eventbus.Subscription
}

// StreamSource is what WatchStreams reads: a *redisstream.Transport.
type StreamSource interface {
	Subscriptions() []*redisstream.Subscription
}

// Collector is a prometheus.Collector for event buses. Make one with New, feed it with Watch,
// WatchStreams and Hooks, and register it once.
type Collector struct {
	published *prometheus.CounterVec
	handling  *prometheus.HistogramVec
	drops     *prometheus.CounterVec
	descs

	mu      sync.Mutex
	buses   map[string]BusSource
	streams map[string]StreamSource
}

// descs are the descriptions of the metrics Collect reads from the watched buses and transports.
type descs struct {
	delivered, failed, retried, deadLettered, dropped, overflowed, undelivered, queued, peak *prometheus.Desc

	sDelivered, sFailed, sDeadLettered, sLeft *prometheus.Desc
}

func newDescs(constLabels prometheus.Labels) descs {
	b := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"bus", "topic", "subscriber"}, constLabels)
	}
	s := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"transport", "stream", "group", "consumer"}, constLabels)
	}
	return descs{
		delivered:    b("girder_eventbus_delivered_events_total", "Events the subscriber's handler returned nil for."),
		failed:       b("girder_eventbus_failed_attempts_total", "Failed handler calls (errors and panics), retries included."),
		retried:      b("girder_eventbus_retried_attempts_total", "Handler calls after the first for an event."),
		deadLettered: b("girder_eventbus_dead_lettered_events_total", "Events given up on after the last attempt."),
		dropped:      b("girder_eventbus_dropped_events_total", "Events discarded or rejected because the subscriber's queue was full."),
		overflowed:   b("girder_eventbus_overflowed_events_total", "Events queued beyond the bound because a handler published them."),
		undelivered:  b("girder_eventbus_undelivered_events_total", "Events still queued when Close or Unsubscribe ran out of time."),
		queued:       b("girder_eventbus_queued_events", "Events accepted and not yet handled, the one in hand included."),
		peak:         b("girder_eventbus_queued_events_peak", "The most events ever waiting in the subscriber's queue at once."),

		sDelivered:    s("girder_redisstream_delivered_events_total", "Events the consumer handled and acknowledged."),
		sFailed:       s("girder_redisstream_failed_attempts_total", "Failed handler calls of the consumer, retries included."),
		sDeadLettered: s("girder_redisstream_dead_lettered_events_total", "Events the consumer gave up on (or could not decode) and acknowledged."),
		sLeft:         s("girder_redisstream_left_pending_events_total", "Events the consumer left unacknowledged when Close ran out of time."),
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
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_eventbus_published_events_total",
			Help:        "Events accepted by Publish, by topic.",
			ConstLabels: opts.ConstLabels,
		}, []string{"bus", "topic"}),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "girder_eventbus_handling_duration_seconds",
			Help:        "Duration of handler calls, by result (delivered, failed).",
			Buckets:     slices.Clone(buckets),
			ConstLabels: opts.ConstLabels,
		}, []string{"bus", "topic", "subscriber", "result"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_eventbus_drops_total",
			Help:        "Events a subscriber will not get, by reason (drop-newest, drop-oldest, rejected, closed, overflow).",
			ConstLabels: opts.ConstLabels,
		}, []string{"bus", "topic", "subscriber", "reason"}),
		descs:   newDescs(opts.ConstLabels),
		buses:   map[string]BusSource{},
		streams: map[string]StreamSource{},
	}, nil
}

// route is a topic and a subscriber, the key of the observers a hook caches.
type route struct{ topic, subscriber string }

// Hooks returns eventbus hooks that count publications and drops and observe each handler
// call's duration, under the label bus=name; set them in eventbus.Options.Hooks or
// redisstream.Options.Hooks. The series of a topic or subscriber are looked up once and
// cached, so an event costs a map read and a histogram observation. To keep hooks of your own
// as well, call both from one function.
func (c *Collector) Hooks(name string) eventbus.Hooks {
	var published, handled sync.Map // topic → Counter; route → *[2]prometheus.Observer
	observers := func(topic, subscriber string) *[2]prometheus.Observer {
		k := route{topic, subscriber}
		if o, ok := handled.Load(k); ok {
			return o.(*[2]prometheus.Observer)
		}
		o := &[2]prometheus.Observer{
			c.handling.WithLabelValues(name, topic, subscriber, "delivered"),
			c.handling.WithLabelValues(name, topic, subscriber, "failed"),
		}
		actual, _ := handled.LoadOrStore(k, o)
		return actual.(*[2]prometheus.Observer)
	}
	return eventbus.Hooks{
		OnPublish: func(_ context.Context, info eventbus.PublishInfo) {
			ctr, ok := published.Load(info.Topic)
			if !ok {
				ctr, _ = published.LoadOrStore(info.Topic, c.published.WithLabelValues(name, info.Topic))
			}
			ctr.(prometheus.Counter).Inc()
		},
		OnDeliver: func(_ context.Context, info eventbus.DeliverInfo) {
			observers(info.Topic, info.Subscriber)[0].Observe(info.Took.Seconds())
		},
		OnFail: func(_ context.Context, info eventbus.FailInfo) {
			observers(info.Topic, info.Subscriber)[1].Observe(info.Took.Seconds())
		},
		OnDrop: func(_ context.Context, info eventbus.DropInfo) {
			c.drops.WithLabelValues(name, info.Topic, info.Subscriber, info.Reason.String()).Inc()
		},
	}
}

// Watch adds b, whose subscriptions' Stats are read at each scrape under the label bus=name:
// those made after Watch too, until they are unsubscribed. It fails when name is empty, b is
// nil, or name is already watched.
func (c *Collector) Watch(name string, b BusSource) error {
	switch {
	case name == "":
		return errors.New("eventbusprom: Watch: empty name")
	case b == nil:
		return fmt.Errorf("eventbusprom: Watch %q: nil bus", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken(name) {
		return fmt.Errorf("eventbusprom: Watch %q: already watched", name)
	}
	c.buses[name] = b
	return nil
}

// WatchStreams adds tr, whose consumers' Stats are read at each scrape under the label
// transport=name. It fails when name is empty, tr is nil, or name is already watched.
func (c *Collector) WatchStreams(name string, tr StreamSource) error {
	switch {
	case name == "":
		return errors.New("eventbusprom: WatchStreams: empty name")
	case tr == nil:
		return fmt.Errorf("eventbusprom: WatchStreams %q: nil transport", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken(name) {
		return fmt.Errorf("eventbusprom: WatchStreams %q: already watched", name)
	}
	c.streams[name] = tr
	return nil
}

func (c *Collector) taken(name string) bool {
	_, bus := c.buses[name]
	_, stream := c.streams[name]
	return bus || stream
}

// Unwatch removes the bus or transport watched as name; its series disappear from the next
// scrape. The counters and histogram that its hooks fed stay, as counters do.
func (c *Collector) Unwatch(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.buses, name)
	delete(c.streams, name)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.delivered, c.failed, c.retried, c.deadLettered, c.dropped,
		c.overflowed, c.undelivered, c.queued, c.peak, c.sDelivered, c.sFailed, c.sDeadLettered, c.sLeft} {
		ch <- d
	}
	c.published.Describe(ch)
	c.handling.Describe(ch)
	c.drops.Describe(ch)
}

// Collect implements prometheus.Collector: it reads the Stats of every watched bus's and
// transport's subscriptions.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	buses, streams := maps.Clone(c.buses), maps.Clone(c.streams)
	c.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, b := range buses {
		type key struct{ topic, subscriber string }
		sum := map[key]eventbus.Stats{}
		var order []key
		for _, s := range b.Subscriptions() {
			// Subscriber names need not be unique: subscriptions that share one add up.
			k, st := key{s.Topic(), s.Name()}, s.Stats()
			t, ok := sum[k]
			if !ok {
				order = append(order, k)
			}
			t.Delivered += st.Delivered
			t.Failed += st.Failed
			t.Retried += st.Retried
			t.DeadLettered += st.DeadLettered
			t.Dropped += st.Dropped
			t.Overflowed += st.Overflowed
			t.Undelivered += st.Undelivered
			t.Queued += st.Queued
			t.PeakQueued = max(t.PeakQueued, st.PeakQueued)
			sum[k] = t
		}
		for _, k := range order {
			st, l := sum[k], []string{name, k.topic, k.subscriber}
			counter(c.delivered, st.Delivered, l...)
			counter(c.failed, st.Failed, l...)
			counter(c.retried, st.Retried, l...)
			counter(c.deadLettered, st.DeadLettered, l...)
			counter(c.dropped, st.Dropped, l...)
			counter(c.overflowed, st.Overflowed, l...)
			counter(c.undelivered, st.Undelivered, l...)
			ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(st.Queued), l...)
			ch <- prometheus.MustNewConstMetric(c.peak, prometheus.GaugeValue, float64(st.PeakQueued), l...)
		}
	}
	for name, tr := range streams {
		type key struct{ stream, group, consumer string }
		sum := map[key]redisstream.Stats{}
		var order []key
		for _, s := range tr.Subscriptions() {
			k, st := key{s.Stream(), s.Group(), s.Consumer()}, s.Stats()
			t, ok := sum[k]
			if !ok {
				order = append(order, k)
			}
			t.Delivered += st.Delivered
			t.Failed += st.Failed
			t.DeadLettered += st.DeadLettered
			t.Pending += st.Pending
			sum[k] = t
		}
		for _, k := range order {
			st, l := sum[k], []string{name, k.stream, k.group, k.consumer}
			counter(c.sDelivered, st.Delivered, l...)
			counter(c.sFailed, st.Failed, l...)
			counter(c.sDeadLettered, st.DeadLettered, l...)
			counter(c.sLeft, st.Pending, l...)
		}
	}
	c.published.Collect(ch)
	c.handling.Collect(ch)
	c.drops.Collect(ch)
}
