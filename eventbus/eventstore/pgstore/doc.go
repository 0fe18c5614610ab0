// Package pgstore is the PostgreSQL event store of package eventbus/eventstore, on pgx v5
// (pgxpool). It is also an eventstore.SnapshotStore, and passes the eventstoretest contract.
//
// # Schema
//
// Migrate creates, in Options.Schema (public by default), the table girder_events (position, an
// identity column, the primary key; stream and version, unique together; type, data as bytea,
// metadata as jsonb, recorded_at), girder_snapshots (one row per stream) and
// girder_checkpoints (one row per projection). Nothing is created behind the caller's back: New
// only checks its options, and Migrate is explicit and idempotent.
//
// # Concurrency and the gap problem
//
// Append runs one transaction: it reads the stream's version, compares it with the expected
// one (a stale one fails with an error matching eventstore.ErrVersionConflict and writes
// nothing), inserts all the events in one statement and sends a NOTIFY, delivered at commit.
// Versions are gap-free per stream; the (stream, version) unique constraint backs them up.
//
// Positions come from an identity (sequence) column, and sequences hand out numbers at insert,
// not at commit: two transactions T1 (position 5) and T2 (position 6) may commit in the order
// T2, T1, and a reader that saw 6 and moved its checkpoint past it would never see 5. This
// store closes that gap by construction: each Append takes a transaction-scoped advisory lock
// (one per schema) before it reads the version and inserts, so appending transactions take
// their positions and commit one at a time, and when position p is visible every committed
// position below it is too. A reader can then keep a single int64 checkpoint and never skip.
//
// The alternative (Marten, Eventuous, and Message DB's cousins) lets appends run in parallel,
// stores each row's transaction ID (xid8) and shows readers only rows below
// pg_snapshot_xmin(pg_current_snapshot()); it scales writes across streams but then needs the
// pair (transaction ID, position) as the checkpoint, since a transaction with a smaller ID can
// take a larger position, and one long transaction holds every subscriber back. This store
// chooses one checkpoint number and correctness that needs no reasoning about snapshots; the
// price is that appends, across all streams of a schema, commit one after another (a batch of
// events in one Append costs one turn). Schemas are independent: one per bounded context
// spreads the lock.
//
// Rolled-back appends leave holes in positions (the sequence does not give numbers back);
// positions are increasing, not contiguous.
//
// # Subscriptions
//
// Subscribe listens (LISTEN) on the schema's channel on a connection it takes out of the pool for
// its lifetime, reads in batches, and once caught up sleeps until a NOTIFY, or
// Options.PollInterval at most (the fallback if a notification is lost).
//
// AppendTx appends inside the caller's pgx transaction, so events commit together with the
// caller's other writes.
//
// # Checkpoints and exactly-once projections
//
// Store is an eventstore.CheckpointStore (table girder_checkpoints), for eventstore.Projection
// and eventstore.Outbox (at least once). TxProjection handles each event in one transaction that
// also advances the checkpoint, after locking it and skipping an event already applied: a read
// model in the same database sees each event exactly once across failures and restarts, and
// Rebuild resets it and the checkpoint in one transaction for a replay from 0.
package pgstore
