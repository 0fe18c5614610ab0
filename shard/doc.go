// Package shard decides where keys live: consistent hashing over a changing set of nodes, routing
// over a fixed number of shards or over ordered key ranges, and scatter-gather across shards.
//
// # Placements
//
// A Placement maps a key to one of a set of nodes of any comparable type N (an address, a
// *redis.Client, a struct) and to n distinct nodes for replicas (LocateN). Five implement it, and
// one contract test suite holds them to the same properties. Placements that implement Failover
// also promise that LocateN's order is the failover order: when the owner is gone, the key goes
// to LocateN's second node, and so on (HasFailoverOrder tells which). Figures below are for 10
// nodes and 1 M keys, checked by the tests named.
//
//   - Ring: a consistent-hash ring with DefaultVirtualNodes points per node and weights. The
//     default choice. Adding a node moves about 1/(n+1) of the keys, all onto it; removing one
//     moves only its keys; no key moves between nodes that stayed; failover order. Max/mean
//     load within 1.05 (TestPlacementContract).
//   - Maglev: Google's lookup table (prime size). A lookup is one hash and one table read, and
//     balance is near-perfect (max/mean within 1.02), but a change also moves keys between
//     surviving nodes, more with more nodes: about 0.2 % of the keys at 10 nodes, 0.4 % at 30
//     and 0.6 % at 100 (TestMaglevStrayMovement holds them under 0.4, 0.5 and 0.7 %). No
//     failover order: a lost owner's keys scatter over the survivors, under 1 in 5 of them to
//     LocateN's second node at 10 nodes (TestPlacementContract).
//   - Rendezvous: highest random weight. Minimal movement, weights, failover order, max/mean
//     within 1.02; a lookup costs O(nodes) hashes, so keep it to tens of nodes.
//   - Jump: jump consistent hash. No memory, max/mean within 1.01, failover order, but no
//     weights and only the last nodes can be removed: for numbered shards, not for servers that
//     fail. Its second nodes lean on the lowest-numbered nodes (see Jump.LocateN).
//   - Bounded layers Mirrokni, Thorup and Zadimoghaddam's bounded loads on a Ring: a key goes to
//     the first node clockwise whose load stays within ⌈(1+ε)·mean⌉, so a hot spot spills over
//     instead of overloading its owner. Load is counted by leases the caller takes and
//     releases; Locate names the node the next lease would take. No failover order.
//
// Keys are hashed with 64-bit xxHash (KeyHash). Nodes are hashed by a name: the string itself, its
// String method, fmt.Sprint, or the NodeKey option.
//
// # Routers
//
// HashRouter sends a key to one of a fixed number of shards with a hash documented well enough to
// be computed in any language (XXH64 mod Shards), with optional Redis-style hash tags.
// RangeRouter sends ordered keys (any cmp.Ordered type, byte strings, or keys with a compare
// function) to the shard of the range [Start, End) holding them, as Vitess does; it validates
// tables against gaps, overlaps and unsorted ranges, and Split and Merge produce new versioned
// tables. RouteVersion returns the version of the table it routed with, so a request can carry
// it and a shard can refuse requests routed with a table older than its own.
//
// # Scatter-gather
//
// Scatter runs a function on every shard with bounded concurrency and a Policy for partial
// failure: FailFast cancels the rest at the first error, Collect returns every result and error.
// ScatterKeys runs it once per shard that a set of keys touches. A panic in a call becomes that
// shard's *PanicError, with its stack. ScatterHooks observe each call (OnStart, OnDone), for
// example to wrap it in a tracing span.
//
// # Concurrency
//
// Every type here is safe for concurrent use. Lookups (Locate, LocateN, Route, Shard) take no lock
// and allocate nothing: each change builds a new immutable snapshot and publishes it with one
// atomic store, so a lookup sees the membership before a change or after it, never in between.
// Changes are serialised among themselves and cost time linear in the size of the structure.
//
// # Zero values
//
// The zero value of the option structs means the documented defaults; the placement and router
// types themselves must be made with their New functions. Nothing here starts a goroutine except
// Scatter, which waits for every goroutine it started before it returns.
package shard
