package shardprom_test

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/shard"
	"github.com/girder-go/girder/shard/shardprom"
)

func Example() {
	c, err := shardprom.New(shardprom.Options{})
	if err != nil {
		panic(err)
	}
	r, err := shard.NewRangeRouter([]shard.Range[string, string]{{NoStart: true, NoEnd: true, Shard: "db-1"}})
	if err != nil {
		panic(err)
	}
	if err := shardprom.WatchRanges(c, "users", r); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c) // serve reg on /metrics with promhttp.HandlerFor

	if _, err := r.Split("m", "db-1", "db-2"); err != nil {
		panic(err)
	}
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			fmt.Printf("%s{%s} %v\n", f.GetName(), strings.Join(labels, ","), m.GetGauge().GetValue())
		}
	}
	// Output:
	// girder_shard_range_table_ranges{router="users"} 2
	// girder_shard_range_table_version{router="users"} 2
}
