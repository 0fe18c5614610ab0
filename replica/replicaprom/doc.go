// Package replicaprom exports replica routers' node state and routing decisions as Prometheus
// metrics.
//
// One Collector serves every router of a process, told apart by a "router" label, with a
// "node" label (the node's name) on per-node series. It has two inputs:
//
//   - Watch registers a router whose Status Collect reads at scrape time: nothing is added to
//     queries for these.
//   - Hooks returns replica.Hooks that count routing decisions by node and reason and role
//     changes. Set them in replica.Options.Hooks. On a query's path they cost a lookup of the
//     node's counters and one increment.
//
// Wiring one router:
//
//	c, err := replicaprom.New(replicaprom.Options{})
//	r, err := replica.New(replica.Options{Primary: primary, Replicas: replicas, Hooks: c.Hooks("orders")})
//	err = c.Watch("orders", r)
//	prometheus.MustRegister(c)
//
// # Metrics
//
// Gauges, read at scrape time from the watched routers' Status, one series per node:
//
//	girder_replica_node_up{router, node}                        the last checks reached the node (1) or not (0)
//	girder_replica_node_fit{router, node}                       a replica that reads may go to (1) or not (0)
//	girder_replica_node_role{router, node, role}                1 for the node's role (primary, replica, unknown), 0 for the others
//	girder_replica_node_lag_bytes{router, node}                 log bytes behind the most advanced node
//	girder_replica_node_lag_seconds{router, node}               replay delay
//	girder_replica_node_check_duration_seconds{router, node}    duration of the last successful check
//
// Counters, fed by the hooks:
//
//	girder_replica_routes_total{router, node, reason}   queries routed, by reason (write, replica, fallback, token-replica, token-waited, token-fallback)
//	girder_replica_role_changes_total{router, node}     a node's role changing between primary and replica (a failover)
//
// The share of reads that fall back to the primary is
//
//	sum(rate(girder_replica_routes_total{reason=~"fallback|token-fallback"}[5m]))
//	  / sum(rate(girder_replica_routes_total{reason!="write"}[5m]))
//
// Labels are bounded by the number of nodes; no label grows with queries.
//
// # Naming
//
// The metrics subpackage of a girder package P is P/Pprom (breaker/breakerprom, lb/lbprom,
// replica/replicaprom): named after what it adds to its parent, as httptest is to http, short
// enough to read at a call site (replicaprom.New), and distinct from client_golang's prometheus
// package and from one another, so a program imports several without renaming. Keeping them in
// subpackages keeps the client_golang dependency out of the core packages.
//
// # OpenTelemetry
//
// Programs that export OpenTelemetry metrics use these collectors through OpenTelemetry's
// Prometheus bridge (go.opentelemetry.io/contrib/bridges/prometheus), which reads a Prometheus
// Gatherer into an OpenTelemetry MeterProvider; girder has no separate OpenTelemetry adapters.
//
// A Collector is safe for concurrent use; Hooks may be called from any number of goroutines.
package replicaprom
