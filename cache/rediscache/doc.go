// Package rediscache holds the parts of package cache that need Redis (go-redis v9): Store, a
// shared level of a cache.Cache that hands out the leases of cache's "Leases" section, and
// Broadcast, a cache.Broadcaster that carries invalidations between instances over a pub/sub
// channel. The guarantees they take part in (C1–C6) are stated in package cache, and the tests
// that check them on real Redis live here.
//
// A Store keeps each value under Options.Prefix plus the key, encoded by Options.Codec (JSON by
// default, readable with redis-cli). A remembered absence and a lease are markers that start with
// a NUL byte, which no JSON value does. A read costs one round trip, a batch one pipelined round
// trip; a miss under a cache.Cache adds the lease script and the compare-and-set back-fill, one
// round trip each. Every call but the reads is bounded by Options.Timeout.
//
// A Broadcast's messages are binary: a version, the sender's identity, and length-prefixed keys in
// the key codec's bytes, so keys of every comparable type travel exactly, bytes that are not UTF-8
// included. The listener pings its connection after HealthInterval of silence and reports
// cache.ErrBroadcastLost when the answer does not come, so a dead subscription goes unnoticed for
// at most two intervals.
//
// Store and Broadcast are safe for concurrent use; their zero values are not usable: make them
// with New and NewBroadcast. Neither closes the go-redis client it is given. Each instance of an
// application needs its own Broadcast (it tells its own messages apart by a random identity).
package rediscache
