package ratelimitprom

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/internal/promopts"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/redislimit"
)

// DefaultBuckets are the upper bounds, in seconds, of the Redis decision histogram when
// Options.Buckets is nil: 250 µs to 1 s, as a rate-limit round trip is usually well under 5 ms,
// the lowest of prometheus.DefBuckets.
var DefaultBuckets = []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// Buckets are the upper bounds, in seconds, of the Redis decision histogram, in increasing
	// order; nil means DefaultBuckets.
	Buckets []float64
	// ConstLabels are added to every series. Their names must not be labels of the collector's
	// own (limiter, result).
	ConstLabels prometheus.Labels
}

// Validate reports every problem with o, or nil; New calls it.
func (o *Options) Validate() error {
	return errors.Join(promopts.Check("ratelimitprom", o.Buckets, o.ConstLabels, "limiter", "result", "le")...)
}

// Collector is a prometheus.Collector for rate and concurrency limiters. Make one with New, feed
// it with the Watch methods, Decider and RedisHooks, and register it once.
type Collector struct {
	decisions  *prometheus.CounterVec
	redis      *prometheus.HistogramVec
	fallbacks  *prometheus.CounterVec
	recoveries *prometheus.CounterVec
	descs

	mu       sync.Mutex
	limiters map[string]*ratelimit.Limiter
	keyed    map[string]*ratelimit.Keyed
	adaptive map[string]*ratelimit.Adaptive
	redisLim map[string]*redislimit.Limiter
}

// descs are the descriptions of the metrics Collect reads from the watched limiters.
type descs struct {
	rate, burst, tokens, keys                                *prometheus.Desc
	limit, inFlight, queued, admitted, shed, dropped, waited *prometheus.Desc
	failing, failures                                        *prometheus.Desc
}

func newDescs(constLabels prometheus.Labels) descs {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"limiter"}, constLabels)
	}
	return descs{
		rate:   d("girder_ratelimit_limit_rate_per_second", "Tokens the limiter adds per second, for each key of a keyed or Redis limiter."),
		burst:  d("girder_ratelimit_limit_burst", "Tokens the limiter's bucket holds when full."),
		tokens: d("girder_ratelimit_tokens", "Tokens in the limiter's bucket now; negative while reservations wait."),
		keys:   d("girder_ratelimit_keys", "Keys the keyed limiter holds a bucket for."),

		limit:    d("girder_ratelimit_adaptive_limit", "The adaptive limiter's current concurrency limit."),
		inFlight: d("girder_ratelimit_adaptive_in_flight_calls", "Calls the adaptive limiter admitted that are not done yet."),
		queued:   d("girder_ratelimit_adaptive_queued_calls", "Calls waiting in the adaptive limiter's queue for a slot."),
		admitted: d("girder_ratelimit_adaptive_admitted_calls_total", "Calls the adaptive limiter admitted."),
		shed:     d("girder_ratelimit_adaptive_shed_calls_total", "Calls the adaptive limiter shed (queue full, waited too long, or evicted)."),
		dropped:  d("girder_ratelimit_adaptive_dropped_calls_total", "Admitted calls whose outcome was Dropped (timed out or overloaded)."),
		waited:   d("girder_ratelimit_adaptive_waited_calls_total", "Admitted calls that waited in the queue first."),

		failing:  d("girder_redislimit_redis_failing", "Whether the Redis limiter's last round trip failed (1), so its failure policy decides, or not (0)."),
		failures: d("girder_redislimit_consecutive_failures", "The Redis limiter's current run of failed round trips."),
	}
}

// New returns a Collector, or every problem with opts.
func New(opts Options) (*Collector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	buckets := opts.Buckets
	if buckets == nil {
		buckets = DefaultBuckets
	}
	return &Collector{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_ratelimit_decisions_total",
			Help:        "Decisions of a limiter wrapped by Decider, by result (allowed, denied, error).",
			ConstLabels: opts.ConstLabels,
		}, []string{"limiter", "result"}),
		redis: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "girder_redislimit_decision_duration_seconds",
			Help:        "Duration of the Redis limiter's round trips, by result (allowed, denied, error).",
			Buckets:     slices.Clone(buckets),
			ConstLabels: opts.ConstLabels,
		}, []string{"limiter", "result"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_redislimit_fallback_decisions_total",
			Help:        "Decisions the Redis limiter's failure policy made instead of Redis, by result (allowed, denied).",
			ConstLabels: opts.ConstLabels,
		}, []string{"limiter", "result"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_redislimit_recoveries_total",
			Help:        "Times Redis answered the limiter again after failing.",
			ConstLabels: opts.ConstLabels,
		}, []string{"limiter"}),
		descs:    newDescs(opts.ConstLabels),
		limiters: map[string]*ratelimit.Limiter{},
		keyed:    map[string]*ratelimit.Keyed{},
		adaptive: map[string]*ratelimit.Adaptive{},
		redisLim: map[string]*redislimit.Limiter{},
	}, nil
}

// decider counts the decisions of the Decider it wraps.
type decider struct {
	d                       ratelimit.Decider
	allowed, denied, failed prometheus.Counter
}

// Decide asks the wrapped Decider and counts its answer.
func (d *decider) Decide(ctx context.Context, key string, n int) (ratelimit.Result, error) {
	res, err := d.d.Decide(ctx, key, n)
	switch {
	case err != nil:
		d.failed.Inc()
	case res.Allowed:
		d.allowed.Inc()
	default:
		d.denied.Inc()
	}
	return res, err
}

// Decider returns d wrapped so that each decision counts in girder_ratelimit_decisions_total
// under the label limiter=name: give it to ratelimit.Middleware in d's place. A decision costs
// one counter increment (an atomic add) more. Any Decider can be wrapped: a Limiter, a Keyed,
// a redislimit Limiter or Hybrid. It fails when name is empty or d is nil.
func (c *Collector) Decider(name string, d ratelimit.Decider) (ratelimit.Decider, error) {
	switch {
	case name == "":
		return nil, errors.New("ratelimitprom: Decider: empty name")
	case d == nil:
		return nil, fmt.Errorf("ratelimitprom: Decider %q: nil Decider", name)
	}
	return &decider{
		d:       d,
		allowed: c.decisions.WithLabelValues(name, "allowed"),
		denied:  c.decisions.WithLabelValues(name, "denied"),
		failed:  c.decisions.WithLabelValues(name, "error"),
	}, nil
}

// RedisHooks returns redislimit hooks that observe each round trip's duration by result, count
// the failure policy's decisions and Redis's recoveries, under the label limiter=name; set them
// in redislimit.Options.Hooks. A round trip costs two clock reads and one histogram
// observation more. To keep hooks of your own as well, call both from one function.
func (c *Collector) RedisHooks(name string) redislimit.Hooks {
	allowed := c.redis.WithLabelValues(name, "allowed")
	denied := c.redis.WithLabelValues(name, "denied")
	failed := c.redis.WithLabelValues(name, "error")
	fbAllowed := c.fallbacks.WithLabelValues(name, "allowed")
	fbDenied := c.fallbacks.WithLabelValues(name, "denied")
	recovered := c.recoveries.WithLabelValues(name)
	return redislimit.Hooks{
		OnDecide: func(_ context.Context, info redislimit.DecideInfo) {
			o := denied
			switch {
			case info.Err != nil:
				o = failed
			case info.Allowed:
				o = allowed
			}
			o.Observe(info.Took.Seconds())
		},
		OnFallback: func(_ context.Context, info redislimit.FallbackInfo) {
			if info.Allowed {
				fbAllowed.Inc()
				return
			}
			fbDenied.Inc()
		},
		OnRecover: func(redislimit.RecoverInfo) { recovered.Inc() },
	}
}

// Watch adds l, whose bucket and limit are read at each scrape under the label limiter=name.
// It fails when name is empty, l is nil, or name is already watched.
func (c *Collector) Watch(name string, l *ratelimit.Limiter) error {
	return watch(c, "Watch", name, l, c.limiters)
}

// WatchKeyed adds k, whose number of keys and limit are read at each scrape under the label
// limiter=name. It fails when name is empty, k is nil, or name is already watched.
func (c *Collector) WatchKeyed(name string, k *ratelimit.Keyed) error {
	return watch(c, "WatchKeyed", name, k, c.keyed)
}

// WatchAdaptive adds a, whose Stats are read at each scrape under the label limiter=name. It
// fails when name is empty, a is nil, or name is already watched.
func (c *Collector) WatchAdaptive(name string, a *ratelimit.Adaptive) error {
	return watch(c, "WatchAdaptive", name, a, c.adaptive)
}

// WatchRedis adds r, whose limit and failure state are read at each scrape under the label
// limiter=name (a Hybrid is watched through its Redis limiter). It fails when name is empty, r
// is nil, or name is already watched.
func (c *Collector) WatchRedis(name string, r *redislimit.Limiter) error {
	return watch(c, "WatchRedis", name, r, c.redisLim)
}

func watch[T any](c *Collector, method, name string, v *T, m map[string]*T) error {
	switch {
	case name == "":
		return fmt.Errorf("ratelimitprom: %s: empty name", method)
	case v == nil:
		return fmt.Errorf("ratelimitprom: %s %q: nil limiter", method, name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, a := c.limiters[name]
	_, b := c.keyed[name]
	_, d := c.adaptive[name]
	_, e := c.redisLim[name]
	if a || b || d || e {
		return fmt.Errorf("ratelimitprom: %s %q: already watched", method, name)
	}
	m[name] = v
	return nil
}

// Unwatch removes the limiter watched as name; its series read at scrape time disappear from
// the next scrape. The counters and histogram that Decider and RedisHooks fed stay, as
// counters do.
func (c *Collector) Unwatch(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.limiters, name)
	delete(c.keyed, name)
	delete(c.adaptive, name)
	delete(c.redisLim, name)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rate, c.burst, c.tokens, c.keys, c.limit, c.inFlight,
		c.queued, c.admitted, c.shed, c.dropped, c.waited, c.failing, c.failures} {
		ch <- d
	}
	c.decisions.Describe(ch)
	c.redis.Describe(ch)
	c.fallbacks.Describe(ch)
	c.recoveries.Describe(ch)
}

// Collect implements prometheus.Collector: it reads every watched limiter.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	limiters, keyed := maps.Clone(c.limiters), maps.Clone(c.keyed)
	adaptive, redisLim := maps.Clone(c.adaptive), maps.Clone(c.redisLim)
	c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	counter := func(d *prometheus.Desc, v uint64, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
	}
	limit := func(l ratelimit.Limit, name string) {
		gauge(c.rate, l.Rate, name)
		gauge(c.burst, float64(max(l.Burst, 1)), name) // Burst 0 means 1
	}
	for name, l := range limiters {
		limit(l.Limit(), name)
		gauge(c.tokens, l.Tokens(), name)
	}
	for name, k := range keyed {
		limit(k.Limit(), name)
		gauge(c.keys, float64(k.Len()), name)
	}
	for name, a := range adaptive {
		s := a.Stats()
		gauge(c.limit, float64(s.Limit), name)
		gauge(c.inFlight, float64(s.InFlight), name)
		gauge(c.queued, float64(s.Queued), name)
		counter(c.admitted, s.Admitted, name)
		counter(c.shed, s.Shed, name)
		counter(c.dropped, s.Dropped, name)
		counter(c.waited, s.Waited, name)
	}
	for name, r := range redisLim {
		limit(r.Limit(), name)
		s := r.Stats()
		failing := 0.0
		if s.Failures > 0 {
			failing = 1
		}
		gauge(c.failing, failing, name)
		gauge(c.failures, float64(s.Failures), name)
	}
	c.decisions.Collect(ch)
	c.redis.Collect(ch)
	c.fallbacks.Collect(ch)
	c.recoveries.Collect(ch)
}
