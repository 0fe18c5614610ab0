package breakerprom_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/breaker/breakerprom"
)

func Example() {
	c, err := breakerprom.New(breakerprom.Options{})
	if err != nil {
		panic(err)
	}
	b, err := breaker.New(breaker.Options{Name: "payments", ConsecutiveFailures: 2, Hooks: c.Hooks("payments")})
	if err != nil {
		panic(err)
	}
	if err := c.Watch("payments", b); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c) // serve reg on /metrics with promhttp.HandlerFor

	fail := func(context.Context) (int, error) { return 0, errors.New("timeout") }
	for range 3 { // two failures open the breaker; the third call is rejected
		_, _ = breaker.Do(context.Background(), b, fail)
	}
	show(reg, "girder_breaker_state", "girder_breaker_state_transitions_total", "girder_breaker_rejected_calls_total",
		"girder_breaker_call_duration_seconds")
	// Output:
	// girder_breaker_call_duration_seconds{breaker="payments",result="failure"} count 2
	// girder_breaker_call_duration_seconds{breaker="payments",result="ignored"} count 0
	// girder_breaker_call_duration_seconds{breaker="payments",result="success"} count 0
	// girder_breaker_rejected_calls_total{breaker="payments"} 1
	// girder_breaker_state{breaker="payments",state="closed"} 0
	// girder_breaker_state{breaker="payments",state="half-open"} 0
	// girder_breaker_state{breaker="payments",state="open"} 1
	// girder_breaker_state_transitions_total{breaker="payments",to="closed"} 0
	// girder_breaker_state_transitions_total{breaker="payments",to="half-open"} 0
	// girder_breaker_state_transitions_total{breaker="payments",to="open"} 1
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
