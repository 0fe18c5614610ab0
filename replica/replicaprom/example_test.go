package replicaprom_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/replica/replicaprom"
)

// fakeNode stands in for a *pgxpool.Pool so the example runs without PostgreSQL.
type fakeNode struct {
	replica.DB
	inRecovery bool
}

func Example() {
	c, err := replicaprom.New(replicaprom.Options{})
	if err != nil {
		panic(err)
	}
	router, err := replica.New(replica.Options{
		Primary:  replica.Node{Name: "pg-1", DB: &fakeNode{}},
		Replicas: []replica.Node{{Name: "pg-2", DB: &fakeNode{inRecovery: true}}},
		Probe: func(ctx context.Context, db replica.DB) (replica.Probe, error) {
			return replica.Probe{InRecovery: db.(*fakeNode).inRecovery, LSN: 1000}, nil
		},
		Hooks: c.Hooks("orders"),
	})
	if err != nil {
		panic(err)
	}
	defer router.Close()
	if err := c.Watch("orders", router); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c) // serve reg on /metrics with promhttp.HandlerFor

	ctx := context.Background()
	if err := router.Ready(ctx); err != nil {
		panic(err)
	}
	for range 3 {
		if _, err := router.Reader(ctx); err != nil {
			panic(err)
		}
	}
	if _, err := router.Writer(ctx); err != nil {
		panic(err)
	}
	show(reg, "girder_replica_node_role", "girder_replica_routes_total")
	// Output:
	// girder_replica_node_role{node="pg-1",role="primary",router="orders"} 1
	// girder_replica_node_role{node="pg-2",role="replica",router="orders"} 1
	// girder_replica_routes_total{node="pg-1",reason="write",router="orders"} 1
	// girder_replica_routes_total{node="pg-2",reason="replica",router="orders"} 3
}

// show prints the named metrics of a scrape of reg whose value is not 0.
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
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if v == 0 {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			fmt.Printf("%s{%s} %v\n", f.GetName(), strings.Join(labels, ","), v)
		}
	}
}
