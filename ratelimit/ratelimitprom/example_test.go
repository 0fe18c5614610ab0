package ratelimitprom_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/ratelimitprom"
)

func Example() {
	c, err := ratelimitprom.New(ratelimitprom.Options{})
	if err != nil {
		panic(err)
	}
	k, err := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerMinute(2)})
	if err != nil {
		panic(err)
	}
	defer k.Close()
	if err := c.WatchKeyed("clients", k); err != nil {
		panic(err)
	}
	d, err := c.Decider("clients", k)
	if err != nil {
		panic(err)
	}
	mw, err := ratelimit.Middleware(ratelimit.MiddlewareOptions{Limiter: d})
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c) // serve reg on /metrics with promhttp.HandlerFor

	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, client := range []string{"192.0.2.1:1000", "192.0.2.1:1001", "192.0.2.1:1002", "192.0.2.2:1000"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = client
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	show(reg, "girder_ratelimit_decisions_total", "girder_ratelimit_keys")
	// Output:
	// girder_ratelimit_decisions_total{limiter="clients",result="allowed"} 3
	// girder_ratelimit_decisions_total{limiter="clients",result="denied"} 1
	// girder_ratelimit_decisions_total{limiter="clients",result="error"} 0
	// girder_ratelimit_keys{limiter="clients"} 2
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
