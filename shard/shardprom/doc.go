// Package shardprom exports the state of girder's shard types that have any as Prometheus
// metrics: the leases a bounded-load placement holds on each node, and the version and size of
// a range router's table. Rings, jump hash, Maglev, rendezvous and hash routers hold no state
// worth a series: their lookups are pure functions of the membership.
//
// Everything is read at scrape time, so nothing is added to Acquire, Release or Route:
//
//	girder_shard_bounded_node_leases{placement, node}   leases held on each member
//	girder_shard_bounded_node_lease_limit{placement}    the most leases a node may hold now
//	girder_shard_range_table_version{router}            grows with each Split, Merge, Replace
//	girder_shard_range_table_ranges{router}             ranges in the current table
//
// Wiring:
//
//	c, err := shardprom.New(shardprom.Options{})
//	err = shardprom.WatchBounded(c, "sessions", b, nil)
//	err = shardprom.WatchRanges(c, "users", r)
//	prometheus.MustRegister(c)
//
// A node near its limit, and how far apart two instances' range tables are (a router that
// missed an update routes with an older version):
//
//	max by (placement) (girder_shard_bounded_node_leases) / max by (placement) (girder_shard_bounded_node_lease_limit)
//	max by (router) (girder_shard_range_table_version) - min by (router) (girder_shard_range_table_version)
//
// Node labels are the members' names, bounded by the membership; a scrape reads each node's
// load under the placement's membership lock. Leases still held on a removed node are not
// shown.
//
// # OpenTelemetry
//
// Programs that export OpenTelemetry metrics use this collector through OpenTelemetry's
// Prometheus bridge (go.opentelemetry.io/contrib/bridges/prometheus), which reads a Prometheus
// Gatherer into an OpenTelemetry MeterProvider; girder has no separate OpenTelemetry adapters.
//
// A Collector is safe for concurrent use.
package shardprom
