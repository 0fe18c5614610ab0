package lbprom_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/lb"
	"github.com/girder-go/girder/lb/lbprom"
)

func Example() {
	c, err := lbprom.New(lbprom.Options{})
	if err != nil {
		panic(err)
	}
	b, err := lb.New(lb.Options[string]{
		Backends: []lb.Backend[string]{{Name: "a", Value: "10.0.0.1:80"}, {Name: "b", Value: "10.0.0.2:80"}},
		Hooks:    c.Hooks("api"),
	})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	if err := c.Watch("api", b); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c) // serve reg on /metrics with promhttp.HandlerFor

	for i := range 4 { // round robin: a, b, a, b; b's second request fails
		_ = b.Do(context.Background(), func(ctx context.Context, addr string) error {
			if i == 3 {
				return errors.New("connection reset")
			}
			return nil
		})
	}
	show(reg, "girder_lb_request_duration_seconds", "girder_lb_backend_healthy")
	// Output:
	// girder_lb_backend_healthy{backend="a",balancer="api"} 1
	// girder_lb_backend_healthy{backend="b",balancer="api"} 1
	// girder_lb_request_duration_seconds{backend="a",balancer="api",result="failure"} count 0
	// girder_lb_request_duration_seconds{backend="a",balancer="api",result="ignored"} count 0
	// girder_lb_request_duration_seconds{backend="a",balancer="api",result="success"} count 2
	// girder_lb_request_duration_seconds{backend="b",balancer="api",result="failure"} count 1
	// girder_lb_request_duration_seconds{backend="b",balancer="api",result="ignored"} count 0
	// girder_lb_request_duration_seconds{backend="b",balancer="api",result="success"} count 1
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
