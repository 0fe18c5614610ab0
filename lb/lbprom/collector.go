package lbprom

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/internal/promopts"
	"github.com/girder-go/girder/lb"
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// Buckets are the upper bounds, in seconds, of the request-duration histogram, in
	// increasing order; nil means prometheus.DefBuckets (5 ms to 10 s).
	Buckets []float64
	// ConstLabels are added to every series, for a process that runs one collector per
	// cluster, say. Their names must not be labels of the collector's own (balancer, backend, result, reason).
	ConstLabels prometheus.Labels
}

// Validate reports every problem with o, or nil; New calls it.
func (o *Options) Validate() error {
	return errors.Join(promopts.Check("lbprom", o.Buckets, o.ConstLabels, "balancer", "backend", "result", "reason", "le")...)
}

// StatsSource is what Watch reads: an *lb.Balancer[T] of any T.
type StatsSource interface {
	Stats() []lb.Stats
}

// RetrySource is what Collect reads the retry budget and hedging counters from, when a watched
// StatsSource has them too; an *lb.Balancer[T] does.
type RetrySource interface {
	RetryStats() lb.RetryStats
	RetryBudgetLeft() float64
}

// Collector is a prometheus.Collector for load balancers. Make one with New, feed it with Watch
// and Hooks, and register it once.
type Collector struct {
	duration *prometheus.HistogramVec
	changes  *prometheus.CounterVec
	leaked   *prometheus.CounterVec
	descs

	mu      sync.Mutex
	watched map[string]StatsSource
}

// descs are the descriptions of the gauges Collect reads from the watched balancers.
type descs struct {
	healthy, ejected, probeDown, available, inFlight, weight, slow, latency *prometheus.Desc
	// per balancer, from RetrySource
	requests, retries, exhausted, hedges, hedgesWon, budgetLeft *prometheus.Desc
}

func newDescs(constLabels prometheus.Labels) descs {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"balancer", "backend"}, constLabels)
	}
	b := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"balancer"}, constLabels)
	}
	return descs{
		healthy:   d("girder_lb_backend_healthy", "Whether the backend is neither ejected nor down by probes (1) or not (0)."),
		ejected:   d("girder_lb_backend_ejected", "Whether passive health has ejected the backend (1) or not (0)."),
		probeDown: d("girder_lb_backend_probe_down", "Whether active health has taken the backend out (1) or not (0)."),
		available: d("girder_lb_backend_available", "Whether the backend's availability check agrees (1) or not (0)."),
		inFlight:  d("girder_lb_backend_in_flight_requests", "Leases of the backend not yet done."),
		weight:    d("girder_lb_backend_weight", "The backend's weight."),
		slow:      d("girder_lb_backend_slow_start_ratio", "Share of its weight the backend gets while slow-starting; 1 otherwise."),
		latency:   d("girder_lb_backend_latency_ewma_seconds", "The backend's peak-EWMA latency (P2CPeakEWMA; 0 otherwise)."),

		requests:   b("girder_lb_requests_total", "Requests through Do, DoKey, DoCall and the proxy."),
		retries:    b("girder_lb_retries_total", "Retries sent, each allowed by the retry budget."),
		exhausted:  b("girder_lb_retries_budget_exhausted_total", "Retries not sent because the retry budget was spent."),
		hedges:     b("girder_lb_hedges_total", "Hedged attempts sent."),
		hedgesWon:  b("girder_lb_hedges_won_total", "Hedged attempts whose answer was the one returned."),
		budgetLeft: b("girder_lb_retry_budget_left", "Retries the retry budget allows now; absent when the budget is off."),
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
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "girder_lb_request_duration_seconds",
			Help:        "Latency of the balancer's leases as reported to Done, by backend and result (success, failure, ignored).",
			Buckets:     slices.Clone(buckets),
			ConstLabels: opts.ConstLabels,
		}, []string{"balancer", "backend", "result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_lb_health_changes_total",
			ConstLabels: opts.ConstLabels,
			Help:        "Backends going out of rotation or back, by reason (failures, probe-failed, eject-expiry, probe-passed).",
		}, []string{"balancer", "backend", "reason"}),
		leaked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_lb_leaked_leases_total",
			ConstLabels: opts.ConstLabels,
			Help:        "Leases the garbage collector reclaimed without Done having been called.",
		}, []string{"balancer"}),
		descs:   newDescs(opts.ConstLabels),
		watched: map[string]StatsSource{},
	}, nil
}

const (
	success = iota
	failure
	ignored
)

var resultNames = [...]string{success: "success", failure: "failure", ignored: "ignored"}

// Hooks returns lb hooks that feed the histogram and counters of the balancer called name; set
// them in that balancer's Options.Hooks. To keep hooks of your own as well, call both from one
// function.
func (c *Collector) Hooks(name string) lb.Hooks {
	// The backends' observers, in a map replaced (under mu) when a backend is first seen, so
	// that the lookup on each Done is a plain map read.
	var (
		observers atomic.Pointer[map[string]*[3]prometheus.Observer]
		mu        sync.Mutex
	)
	observers.Store(&map[string]*[3]prometheus.Observer{})
	observersOf := func(backend string) *[3]prometheus.Observer {
		if o := (*observers.Load())[backend]; o != nil {
			return o
		}
		mu.Lock()
		defer mu.Unlock()
		old := *observers.Load()
		if o := old[backend]; o != nil {
			return o
		}
		var o [3]prometheus.Observer
		for i, r := range resultNames {
			o[i] = c.duration.WithLabelValues(name, backend, r)
		}
		next := maps.Clone(old)
		next[backend] = &o
		observers.Store(&next)
		return &o
	}
	leaked := c.leaked.WithLabelValues(name)
	return lb.Hooks{
		OnDone: func(info lb.DoneInfo) {
			if info.Latency <= 0 {
				return
			}
			r := success
			switch {
			case info.Failure:
				r = failure
			case info.Err != nil:
				r = ignored
			}
			observersOf(info.Backend)[r].Observe(info.Latency.Seconds())
		},
		OnHealthChange: func(info lb.HealthChangeInfo) {
			c.changes.WithLabelValues(name, info.Backend, info.Reason.String()).Inc()
		},
		OnLeak: func(lb.LeakInfo) { leaked.Inc() },
	}
}

// Watch adds b, whose backends' Stats are read at each scrape under the label balancer=name.
// It fails when name is empty, b is nil, or name is already watched.
func (c *Collector) Watch(name string, b StatsSource) error {
	switch {
	case name == "":
		return errors.New("lbprom: Watch: empty name")
	case b == nil:
		return fmt.Errorf("lbprom: Watch %q: nil balancer", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.watched[name]; ok {
		return fmt.Errorf("lbprom: Watch %q: already watched", name)
	}
	c.watched[name] = b
	return nil
}

// Unwatch removes the balancer watched as name; its gauges disappear from the next scrape. The
// counters and histogram that its hooks fed stay, as counters do.
func (c *Collector) Unwatch(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.watched, name)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.healthy, c.ejected, c.probeDown, c.available, c.inFlight,
		c.weight, c.slow, c.latency, c.requests, c.retries, c.exhausted, c.hedges, c.hedgesWon, c.budgetLeft} {
		ch <- d
	}
	c.duration.Describe(ch)
	c.changes.Describe(ch)
	c.leaked.Describe(ch)
}

// Collect implements prometheus.Collector: it reads every watched balancer's Stats and, when it
// is a RetrySource, its retry budget and hedging counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	watched := make(map[string]StatsSource, len(c.watched))
	for name, b := range c.watched {
		watched[name] = b
	}
	c.mu.Unlock()
	for name, b := range watched {
		for _, s := range b.Stats() {
			gauge := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name, s.Name)
			}
			gauge(c.healthy, bit(s.Healthy))
			gauge(c.ejected, bit(s.Ejected))
			gauge(c.probeDown, bit(s.ProbeDown))
			gauge(c.available, bit(s.Available))
			gauge(c.inFlight, float64(s.Active))
			gauge(c.weight, float64(s.Weight))
			gauge(c.slow, s.SlowFactor)
			gauge(c.latency, s.Latency.Seconds())
		}
		if r, ok := b.(RetrySource); ok {
			c.collectRetries(ch, name, r)
		}
	}
	c.duration.Collect(ch)
	c.changes.Collect(ch)
	c.leaked.Collect(ch)
}

// collectRetries reads the retry budget and hedging counters of the balancer called name.
func (c *Collector) collectRetries(ch chan<- prometheus.Metric, name string, r RetrySource) {
	st := r.RetryStats()
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
	}
	counter(c.requests, st.Requests)
	counter(c.retries, st.RetriesAttempted)
	counter(c.exhausted, st.RetriesBudgetExhausted)
	counter(c.hedges, st.HedgesSent)
	counter(c.hedgesWon, st.HedgesWon)
	if left := r.RetryBudgetLeft(); !math.IsInf(left, 1) {
		ch <- prometheus.MustNewConstMetric(c.budgetLeft, prometheus.GaugeValue, left, name)
	}
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
