package breakerprom

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/internal/promopts"
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// Buckets are the upper bounds, in seconds, of the call-duration histogram, in increasing
	// order; nil means prometheus.DefBuckets (5 ms to 10 s).
	Buckets []float64
	// ConstLabels are added to every series, for a process that runs one collector per
	// cluster, say. Their names must not be labels of the collector's own (breaker, state, to, result).
	ConstLabels prometheus.Labels
}

// Validate reports every problem with o, or nil; New calls it.
func (o *Options) Validate() error {
	return errors.Join(promopts.Check("breakerprom", o.Buckets, o.ConstLabels, "breaker", "state", "to", "result", "le")...)
}

// Collector is a prometheus.Collector for circuit breakers. Make one with New, feed it with
// Watch and Hooks, and register it once.
type Collector struct {
	duration    *prometheus.HistogramVec
	rejected    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	descs

	mu      sync.Mutex
	watched map[string]*breaker.Breaker
}

// descs are the descriptions of the gauges Collect reads from the watched breakers.
type descs struct {
	state, calls, failures, slow, consecutive *prometheus.Desc
}

func newDescs(constLabels prometheus.Labels) descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"breaker"}, labels...), constLabels)
	}
	return descs{
		state:       d("girder_breaker_state", "Whether the breaker is in the state (1) or not (0).", "state"),
		calls:       d("girder_breaker_window_calls", "Calls the breaker's window holds (closed state)."),
		failures:    d("girder_breaker_window_failures", "Failed calls the breaker's window holds (closed state)."),
		slow:        d("girder_breaker_window_slow_calls", "Slow calls the breaker's window holds (closed state)."),
		consecutive: d("girder_breaker_consecutive_failures", "The breaker's current run of failed calls (closed state, with ConsecutiveFailures set)."),
	}
}

var states = [...]breaker.State{breaker.Closed, breaker.Open, breaker.HalfOpen}

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
			Name:        "girder_breaker_call_duration_seconds",
			Help:        "Duration of the calls the breaker admitted, by result (success, failure, ignored).",
			Buckets:     slices.Clone(buckets),
			ConstLabels: opts.ConstLabels,
		}, []string{"breaker", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_breaker_rejected_calls_total",
			Help:        "Calls the breaker rejected without making them.",
			ConstLabels: opts.ConstLabels,
		}, []string{"breaker"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_breaker_state_transitions_total",
			Help:        "State transitions of the breaker, by the state entered.",
			ConstLabels: opts.ConstLabels,
		}, []string{"breaker", "to"}),
		descs:   newDescs(opts.ConstLabels),
		watched: map[string]*breaker.Breaker{},
	}, nil
}

// Hooks returns breaker hooks that feed the counters and the histogram of the breaker called
// name; set them in that breaker's Options.Hooks (its Name should be name). To keep hooks of
// your own as well, call both from one function.
func (c *Collector) Hooks(name string) breaker.Hooks {
	var observe [3]prometheus.Observer // by breaker.Result: Success, Failure, Ignored
	for _, r := range []breaker.Result{breaker.Success, breaker.Failure, breaker.Ignored} {
		observe[r] = c.duration.WithLabelValues(name, r.String())
	}
	var entered [len(states)]prometheus.Counter
	for _, s := range states {
		entered[s] = c.transitions.WithLabelValues(name, s.String())
	}
	rejected := c.rejected.WithLabelValues(name)
	return breaker.Hooks{
		OnStateChange: func(info breaker.StateChangeInfo) {
			if int(info.To) < len(entered) && info.To >= 0 {
				entered[info.To].Inc()
			}
		},
		OnOutcome: func(_ context.Context, info breaker.OutcomeInfo) {
			if info.Result == breaker.Rejected {
				rejected.Inc()
				return
			}
			if int(info.Result) < len(observe) && info.Result >= 0 {
				observe[info.Result].Observe(info.Took.Seconds())
			}
		},
	}
}

// Watch adds b, whose state and window are read at each scrape under the label breaker=name.
// It fails when name is empty, b is nil, or name is already watched.
func (c *Collector) Watch(name string, b *breaker.Breaker) error {
	switch {
	case name == "":
		return errors.New("breakerprom: Watch: empty name")
	case b == nil:
		return fmt.Errorf("breakerprom: Watch %q: nil Breaker", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.watched[name]; ok {
		return fmt.Errorf("breakerprom: Watch %q: already watched", name)
	}
	c.watched[name] = b
	return nil
}

// Unwatch removes the breaker watched as name; its gauges disappear from the next scrape. The
// counters and histogram that its hooks fed stay, as counters do.
func (c *Collector) Unwatch(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.watched, name)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.calls, c.failures, c.slow, c.consecutive} {
		ch <- d
	}
	c.duration.Describe(ch)
	c.rejected.Describe(ch)
	c.transitions.Describe(ch)
}

// Collect implements prometheus.Collector: it reads every watched breaker's state and window.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	watched := make(map[string]*breaker.Breaker, len(c.watched))
	for name, b := range c.watched {
		watched[name] = b
	}
	c.mu.Unlock()
	for name, b := range watched {
		n := b.Counts()
		for _, s := range states {
			v := 0.0
			if n.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, name, s.String())
		}
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.GaugeValue, float64(n.Calls), name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.GaugeValue, float64(n.Failures), name)
		ch <- prometheus.MustNewConstMetric(c.slow, prometheus.GaugeValue, float64(n.SlowCalls), name)
		ch <- prometheus.MustNewConstMetric(c.consecutive, prometheus.GaugeValue, float64(n.ConsecutiveFailures), name)
	}
	c.duration.Collect(ch)
	c.rejected.Collect(ch)
	c.transitions.Collect(ch)
}
