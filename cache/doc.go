// Package cache is a multi-level cache: an in-process level on otter (W-TinyLFU), a shared level
// on Redis, and the store of record behind them, the database, reached through a Loader on reads
// and a Writer on writes.
//
// # Layout
//
// This package depends on otter only. What needs Redis lives in subpackages, which implement this
// package's small interfaces: cache/rediscache has the Redis level (a Store and Leaser) and the
// invalidation broadcast over pub/sub (a Broadcaster); cache/writebehind has the write-behind
// queue (a Writer) and its Redis Streams journal. cache/cachetest is the contract every Store
// passes. Both Redis subpackages run on one Redis and on a Redis Cluster, where the
// broadcast should use sharded pub/sub; their docs say what a failover costs.
//
// # Shapes
//
// Store is the one shape of every level: Get, Set with a TTL, Delete and their batch forms, with
// ctx. Memory (otter) and Sharded (several stores and a pick function, for example girder's
// shard.Ring) are here, rediscache.Store (go-redis v9, pluggable Codec, key prefix) in
// cache/rediscache; anything else that implements Store can be a level. Loader / LoaderFunc and BatchLoader / BatchLoaderFunc read the
// database; Writer writes it.
//
// # Reads
//
// Cache.Get reads the levels nearest first, then the Loader, and back-fills the levels above the
// one that answered (cache-aside). Misses of one key are coalesced: however many goroutines miss
// at once, the levels below and the Loader are read once, and the waiting readers get the value
// after it has been stored in the levels. A reader that gives up (its ctx ends) does not cancel
// the load for the others; the load is canceled when the last one gives up, or on Close. A Loader that panics
// gives every waiting reader a *PanicError.
//
// Each level has its own TTL, shortened by a random jitter so that values loaded together do not
// expire together. With NegativeTTL, ErrNotFound from the Loader is remembered too, in the levels
// that can (NegativeStore: Memory and rediscache.Store do). With RefreshAhead, a hit on a Memory first level whose entry is
// about to expire returns the cached value and starts one background reload, at most
// RefreshConcurrency at once (stale-while-revalidate). GetMany does the same for many keys with one
// batch read per level (a Redis pipeline) and one BatchLoader call.
//
// A level that fails a read is skipped: with Redis down, reads fall through to the Loader (fail
// open), and nothing loaded is kept in memory, since Redis could not grant the lease (see Leases).
// The failure reaches Hooks.OnError and Stats.
//
// # Writes
//
// Set and Delete are write-through: the Writer first; if it fails, the levels are left untouched
// and the error is returned. Then every level is updated, Redis before memory (or, with
// InvalidateOnWrite, cleared of the key), and a load of the key that was in flight does not
// back-fill its older value. Failures of levels on writes are returned. With a writebehind.Queue
// as the Writer, Set returns once the write is queued. Invalidate drops cached copies without
// touching the database.
//
// With a Broadcaster (rediscache.Broadcast: a Redis pub/sub channel) every Set, Delete and Invalidate
// is published, and the other instances drop the key from their Memory levels. Messages are
// binary (a version, the sender, length-prefixed keys), so keys of every comparable type travel
// exactly, bytes that are not UTF-8 included. An instance keeps nothing in memory while it does not
// hear the others: before its first subscription, and from the moment it sees that messages may
// have been lost (the connection failed, a health ping went unanswered for HealthInterval, a
// message could not be read) until it is subscribed again; it then clears its Memory levels and
// reports ErrBroadcastLost to Hooks.OnError. Call Subscribed before an instance takes traffic.
//
// # Leases
//
// A miss on a level that is a Leaser (rediscache.Store), of Get or of GetMany (a lease per missed
// key; a ManyLeaser such as rediscache.Store takes them in one pipelined round trip and
// back-fills them in another), takes a lease before the Loader runs, as
// in "Scaling Memcache at Facebook": a script sets the key to a lease marker with a random token
// for rediscache.Options.LeaseTTL, or joins the marker already there. The back-fill is a
// compare-and-set script that stores the loaded value only while the key still holds that
// marker, and the Memory levels are back-filled only when Redis accepted it. The marker lives in
// the value's own key, so a write (SET or DEL of the key, by Set, Delete or Invalidate) ends every
// lease on it with one command on one key, and a cluster needs no hash tags.
//
// Why no interleaving leaves an older value in Redis: let a load read the store of record before
// a write W commits there. The load took its lease before it read, so its marker was in the key
// before W reached the store, hence before W's command on Redis (which comes after the store). If
// the compare-and-set runs after W's command, the marker is gone (W overwrote or deleted it, and a
// later lease has a new token): it stores nothing. If it runs before, W's command overwrites or
// deletes what it stored. Either way, once W has returned and the load has ended, Redis holds W's
// value, a newer one, or nothing. A Memory level is filled after Redis accepted, under the load's
// lock; a write marks the loads in flight stale (locally, and on the other instances when its
// invalidation arrives) and then updates the Memory levels, so a fill either precedes the drop or
// does not happen. A write also forgets the load in flight: a reader that comes after it starts a
// load of its own. A refresh (RefreshAhead) holds no lease: it renews the Memory levels only.
//
// # Guarantees
//
// Each is a property a test checks, named with its package; the fault-schedule test checks C1, C3
// and C6 on real Redis, reading through Get and GetMany, while Redis is stopped, paused, flushed,
// has keys deleted and has its pub/sub clients killed. The window W is
// 2 × rediscache.BroadcastOptions.HealthInterval (2 s with rediscache.DefaultHealthInterval). Timers
// keep it, so on an overloaded machine it stretches by as much as timers fire late there (twice:
// the listener's ping, then its deadline); the test measures that lateness and allows for it.
//
//   - C1. After a Set, Delete or Invalidate returns nil, no instance serves an older value to a Get
//     that starts more than W later. rediscache.TestCacheFaultSchedule.
//   - C2. A back-fill never overwrites a newer write: once the write has returned and the load has
//     ended, Redis and every Memory level hold the written value, a newer one, or nothing.
//     Get and GetMany alike. rediscache.TestBackfillNeverOverwritesANewerWrite.
//   - C3. A write that returns an error (Redis unreachable) may leave older copies, for at most the
//     load in flight plus the Redis level's TTL plus the Memory level's TTL, plus W.
//     rediscache.TestCacheFaultSchedule.
//   - C4. Keys of every comparable type reach the other instances exactly as published, and the
//     decoder rejects (never panics on, never misreads) a message it cannot read.
//     rediscache.TestBroadcastKeysRoundTrip, rediscache.FuzzBroadcastMessage,
//     rediscache.TestDecodeMessageRejectsWhatItCannotRead.
//   - C5. With Redis paused, stopped or unreachable, a Get or a Set returns within its ctx or a
//     bounded time: a Get's read of Redis is bounded by the client's ReadTimeout per attempt (the
//     hit path adds no timer), its lease and back-fill each by rediscache.Options.Timeout
//     (rediscache.DefaultTimeout); a Set's calls each by Timeout, the publish by
//     rediscache.BroadcastOptions.Timeout. go-redis applies a ctx deadline to the socket only with the
//     client's ContextTimeoutEnabled; without it, one attempt's ReadTimeout.
//     rediscache.TestGetAndSetReturnDuringAnOutage.
//   - C6. Once writes and faults stop and the TTLs of C3 have passed, every level of every instance
//     agrees with the store of record. rediscache.TestCacheFaultSchedule.
//
// Preconditions: writes of one key are serialised by the store of record (a row lock), or
// InvalidateOnWrite is set; without it, two concurrent Sets of one key may reach the store and
// Redis in different orders, and Redis keeps the last one it received until its TTL. Redis does
// not bring an older value back: a restart from an older snapshot, or a failover to a replica
// that missed writes, may serve what it holds until the TTL.
//
// # Performance
//
// A hit on a Memory first level is one otter read of the value as stored: no lock, no allocation,
// no boxing of the key, and no reading of the time, since Memory gives otter a coarse clock that a
// goroutine updates every millisecond (MemoryOptions.ClockResolution, PreciseClock). With
// RefreshAhead the read also returns the entry's deadline, from the same clock. Remembered
// absences live in a second otter cache that is read only after a miss.
//
// # Use
//
// Cache, Memory and Sharded are safe for concurrent use. Their zero values are not usable: make
// them with New, NewMemory and NewSharded (and the Redis parts with rediscache.New and
// rediscache.NewBroadcast). Close
// a Cache when done: it stops its background refreshes and listener and waits for them; the stores
// are the caller's to close (Memory.Close stops otter's maintenance goroutine).
//
// Choose a Memory level alone for data private to one process; Memory then Redis for data shared
// by many instances, with a rediscache.Broadcast so writes reach every instance's memory; Redis
// alone when values change too often for copies in memory. For write-behind (and its crash-safe
// journal), see cache/writebehind.
package cache
