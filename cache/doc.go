// Package cache is a multi-level cache: an in-process level on otter (W-TinyLFU), a shared level
// on Redis, and the store of record behind them, the database, reached through a Loader on reads
// and a Writer on writes.
//
// # Shapes
//
// Store is the one shape of every level: Get, Set with a TTL, Delete and their batch forms, with
// ctx. Memory (otter), Redis (go-redis v9, pluggable Codec, key prefix) and Sharded (several
// stores and a pick function, for example girder's shard.Ring) are built in; anything else that
// implements Store can be a level. Loader / LoaderFunc and BatchLoader / BatchLoaderFunc read the
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
// that can (Memory and Redis do). With RefreshAhead, a hit on a Memory first level whose entry is
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
// back-fill its older value. Failures
// of levels on writes are returned. With a WriteBehind queue as the Writer, Set returns once the
// write is queued. Invalidate drops cached copies without touching the database.
//
// With a Broadcaster (RedisBroadcast: a Redis pub/sub channel) every Set, Delete and Invalidate
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
// A miss on a Redis level takes a lease before the Loader runs, as in "Scaling Memcache at
// Facebook": a script sets the key to a lease marker with a random token for
// RedisOptions.LeaseTTL (DefaultLeaseTTL), or joins the marker already there. The back-fill is a
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
// Each is a property a test checks; the fault-schedule test checks C1, C3 and C6 on real Redis
// while Redis is stopped, paused, flushed, has keys deleted and has its pub/sub clients killed.
// The window W is 2 × RedisBroadcastOptions.HealthInterval (2 s with DefaultHealthInterval).
//
//   - C1. After a Set, Delete or Invalidate returns nil, no instance serves an older value to a Get
//     that starts more than W later. TestCacheFaultSchedule.
//   - C2. A back-fill never overwrites a newer write: once the write has returned and the load has
//     ended, Redis and every Memory level hold the written value, a newer one, or nothing.
//     TestBackfillNeverOverwritesANewerWrite.
//   - C3. A write that returns an error (Redis unreachable) may leave older copies, for at most the
//     load in flight plus the Redis level's TTL plus the Memory level's TTL, plus W.
//     TestCacheFaultSchedule.
//   - C4. Keys of every comparable type reach the other instances exactly as published, and the
//     decoder rejects (never panics on, never misreads) a message it cannot read.
//     TestBroadcastKeysRoundTrip, FuzzBroadcastMessage, TestDecodeMessageRejectsWhatItCannotRead.
//   - C5. With Redis paused, stopped or unreachable, a Get or a Set returns within its ctx or a
//     bounded time: a Get's read of Redis is bounded by the client's ReadTimeout per attempt (the
//     hit path adds no timer), its lease and back-fill each by RedisOptions.Timeout
//     (DefaultRedisTimeout); a Set's calls each by Timeout, the publish by
//     RedisBroadcastOptions.Timeout. go-redis applies a ctx deadline to the socket only with the
//     client's ContextTimeoutEnabled; without it, one attempt's ReadTimeout.
//     TestGetAndSetReturnDuringAnOutage.
//   - C6. Once writes and faults stop and the TTLs of C3 have passed, every level of every instance
//     agrees with the store of record. TestCacheFaultSchedule.
//
// Preconditions: writes of one key are serialised by the store of record (a row lock), or
// InvalidateOnWrite is set; without it, two concurrent Sets of one key may reach the store and
// Redis in different orders, and Redis keeps the last one it received until its TTL. Redis does
// not bring an older value back: a restart from an older snapshot, or a failover to a replica
// that missed writes, may serve what it holds until the TTL. GetMany's back-fill holds no lease
// and is not covered by C2.
//
// # Write-behind
//
// WriteBehind is a Writer that answers once a write is queued and writes the store of record
// later: only the latest value of a key is written (deletes included), writes are batched by size
// and by delay (BatchWriter when the store implements it), a key is never written by two flushes
// at once, failures are retried with backoff, a failing batch is split so one bad write does not
// hold back the rest, and what exhausts its retries goes to the DeadLetter hook. The queue is
// bounded; when it is full, Write blocks with ctx, writes synchronously, or returns ErrQueueFull,
// as WriteBehindOptions.WhenFull says, so nothing is dropped silently. Flush and Close wait for
// everything accepted before them; Close returns an *UnwrittenError listing what its deadline cut
// off.
//
// A queue in memory loses what it holds if the process crashes. With a Journal, each write is
// appended to a Redis stream before Write returns, and entries are acknowledged only after the
// store took them; another instance (or the same one restarted) claims and applies the entries of
// a crashed instance. Choose write-through (no Writer queue) when readers of the database must see
// a write at once, WriteBehind when write latency or database load matters more and a short delay
// is acceptable, and add the Journal when an acknowledged write must survive a crash.
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
// Cache, Memory, Redis, Sharded and RedisBroadcast are safe for concurrent use. Their zero values
// are not usable: make them with New, NewMemory, NewRedis, NewSharded and NewRedisBroadcast. Close
// a Cache when done: it stops its background refreshes and listener and waits for them; the stores
// are the caller's to close (Memory.Close stops otter's maintenance goroutine).
//
// Choose a Memory level alone for data private to one process; Memory then Redis for data shared
// by many instances, with a RedisBroadcast so writes reach every instance's memory; Redis alone
// when values change too often for copies in memory.//
// # Journal guarantees
//
// These hold for a WriteBehind with a Journal, under the preconditions below; each names the test
// that checks it on real Redis (TestJournalFaultSchedule checks J2, J3, J4, J7 and J8 together,
// under SIGKILLed writer processes, Redis restarts with and without persistence, pauses, a deleted
// stream and Close with an expired deadline; GIRDER_SOAK=10m runs it for ten minutes).
//
//   - J1 Durable before acknowledged: Write returns nil only once the entry is in the stream and
//     in this instance's pending list, written by one script. TestJournalWritesAreDurableThenAcknowledged.
//   - J2 Every acknowledged write is applied: after a crash or a Close whose deadline expired, the
//     instance restarted under the same Consumer takes its pending entries back at start, and any
//     other instance claims them (XAUTOCLAIM) once idle for ClaimIdle. The store ends with the last
//     acknowledged value of each key or a later one. TestJournalFaultSchedule,
//     TestJournalCrashRecoveryRedis, TestJournalRestartTakesOwnEntriesBack.
//   - J3 Nothing is trimmed before it is applied: trimming removes only entries that every consumer
//     group has delivered and acknowledged; entries nobody has read are applied by the next
//     instance at start. TestJournalRedis/UndeliveredEntriesAreAppliedNotTrimmed.
//   - J4 A failed Write is never applied: an error that neither wraps ErrJournalAmbiguous nor is a
//     *JournalReplicaError means nothing was appended. The append refuses to write without the
//     consumer group; a lost stream or group is created again and the Write goes on.
//     TestJournalRedis/LostStreamOrGroupIsRecreated, TestJournalFaultSchedule.
//   - J5 Ambiguity is said: when the append may have reached Redis without its reply coming back
//     (a broken or timed-out connection, ctx or Timeout ending mid-append), the error wraps
//     ErrJournalAmbiguous: the write may or may not be applied. If it was appended, it is applied
//     like any other. TestJournalOrphanOfAmbiguousAppendIsApplied.
//   - J6 No hang: Write returns within its ctx or the journal's Timeout (5 s by default), Redis down
//     or paused. TestJournalRedis/WriteDuringPauseReturnsWithinTimeout.
//   - J7 Per-key order: the writes of a key made through one instance reach the store in order, and
//     a recovered write is skipped when the stream holds a newer write of its key, so recovery
//     never rolls a key back. Writes of one key through two instances are not ordered.
//     TestJournalRecoveryNeverRollsBack, TestJournalFaultSchedule.
//   - J8 At least once: a write may be applied twice (a crash between the store write and the
//     acknowledgement). Make the store's writes idempotent (upsert the whole value, delete) or
//     carry a version in the value and let the store keep the newer one (UPDATE ... WHERE version
//     < $new). TestJournalFaultSchedule counts duplicates.
//   - J9 Replicas: with JournalOptions.Replicas, Write returns nil only once that many replicas
//     confirmed the append (WAIT); fewer within ReplicaTimeout give a *JournalReplicaError
//     (errors.Is ErrJournalNotReplicated): written on the primary, queued and applied, but not
//     confirmed on the replicas. TestJournalRedis/ReplicasNotConfirmed, TestJournalRedis/ReplicasConfirmed.
//
// Preconditions on Redis. J2 needs the journal to survive Redis: persistence on (appendonly yes
// with appendfsync always; everysec may lose the last second of acknowledged writes when Redis
// crashes). A Redis restarted without persistence, FLUSHALL, a deleted stream, or a failover to a
// replica that had not received the entry loses the journal's entries: an instance still applies
// the writes it holds in memory, but those of an instance that dies before applying them are lost
// (the fault test checks that acknowledged writes are lost only then). Where Redis fails over, set
// Replicas so an acknowledged write is on that many replicas. ClaimIdle must exceed the longest
// pause of a live instance (and of Redis): otherwise another instance claims writes still held
// in memory, and a key may be applied twice and out of order. With a go-redis client that retries
// (MaxRetries, 3 by default) an earlier attempt may have reached Redis, so every error after the
// request was handed to the client is ambiguous; MaxRetries -1 makes refused connections and
// error replies plain failures.
package cache
