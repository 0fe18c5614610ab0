package cacheprom_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cacheprom"
)

func Example() {
	c, err := cacheprom.New(cacheprom.Options{})
	if err != nil {
		panic(err)
	}
	mem, err := cache.NewMemory(cache.MemoryOptions[string, int]{RecordStats: true}) // RecordStats: hits and misses counted
	if err != nil {
		panic(err)
	}
	defer mem.Close()
	users, err := cache.New(cache.Options[string, int]{
		Levels: []cache.Level[string, int]{{Name: "memory", Store: mem}},
		Loader: cache.LoaderFunc[string, int](func(_ context.Context, key string) (int, error) { return len(key), nil }),
		Hooks:  cacheprom.Hooks[string](c, "users"),
	})
	if err != nil {
		panic(err)
	}
	defer users.Close()
	if err := c.Watch("users", users); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c) // serve reg on /metrics with promhttp.HandlerFor

	ctx := context.Background()
	for _, key := range []string{"ada", "ada", "ada", "grace"} { // two misses load, two reads hit
		if _, err := users.Get(ctx, key); err != nil {
			panic(err)
		}
	}
	show(reg, "girder_cache_hits_total", "girder_cache_misses_total", "girder_cache_loads_total",
		"girder_cache_load_duration_seconds")
	// Output:
	// girder_cache_hits_total{cache="users",level="memory"} 2
	// girder_cache_load_duration_seconds{cache="users",result="error"} count 0
	// girder_cache_load_duration_seconds{cache="users",result="not_found"} count 0
	// girder_cache_load_duration_seconds{cache="users",result="success"} count 2
	// girder_cache_loads_total{cache="users"} 2
	// girder_cache_misses_total{cache="users",level="memory"} 2
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
