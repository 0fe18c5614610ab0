package eventbusprom_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventbusprom"
)

func Example() {
	c, err := eventbusprom.New(eventbusprom.Options{})
	if err != nil {
		panic(err)
	}
	bus, err := eventbus.New(eventbus.Options{Hooks: c.Hooks("app")})
	if err != nil {
		panic(err)
	}
	if err := c.Watch("app", bus); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c) // serve reg on /metrics with promhttp.HandlerFor

	topic, err := eventbus.NewTopic[int](bus, "orders")
	if err != nil {
		panic(err)
	}
	_, err = topic.Subscribe(func(_ context.Context, n int) error {
		if n < 0 {
			return errors.New("negative order")
		}
		return nil
	}, eventbus.SubscribeOptions[int]{Name: "billing"})
	if err != nil {
		panic(err)
	}
	for _, n := range []int{1, 2, -3} {
		_ = topic.Publish(context.Background(), n)
	}
	show(reg, "girder_eventbus_published_events_total", "girder_eventbus_delivered_events_total",
		"girder_eventbus_dead_lettered_events_total", "girder_eventbus_handling_duration_seconds")
	// Output:
	// girder_eventbus_dead_lettered_events_total{bus="app",subscriber="billing",topic="orders"} 1
	// girder_eventbus_delivered_events_total{bus="app",subscriber="billing",topic="orders"} 2
	// girder_eventbus_handling_duration_seconds{bus="app",result="delivered",subscriber="billing",topic="orders"} count 2
	// girder_eventbus_handling_duration_seconds{bus="app",result="failed",subscriber="billing",topic="orders"} count 1
	// girder_eventbus_published_events_total{bus="app",topic="orders"} 3
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
