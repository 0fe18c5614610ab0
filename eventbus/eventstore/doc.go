// Package eventstore keeps events as the system of record (event sourcing): each aggregate (an
// order, a cart) is a stream of events, its state is rebuilt from them, and read models and
// other processes follow the store in order.
//
// It is named for what it is, an event store, and lives under eventbus because its events are the
// ones the bus carries: a subscription or an outbox hands stored events to any
// eventbus.Publisher (the in-process bus, eventbus/redisstream). The bus moves events; the store
// remembers them.
//
// # Streams, versions, positions
//
// Append writes events at the end of a stream, all or none, under optimistic concurrency: the
// caller says which version it expects the stream to be at (the version its state was loaded
// at), Any, or NoStream. A stale expectation fails with a *VersionConflictError matching
// ErrVersionConflict, whatever the interleaving of concurrent appenders, and writes nothing: the
// caller reloads and decides again. Versions within a stream are 1, 2, 3, … with no gap; every
// event also has a global position, increasing across streams, in the order ReadAll and
// Subscribe deliver them.
//
// ReadStream reads a stream from a version, ReadAll everything from a position, and Subscribe
// hands a handler every event from a position on: the stored ones first (catch-up), then new
// ones as they are appended (live), each once and in position order. The returned events share
// their Data with the store: handlers must not modify it.
//
// # Aggregates and snapshots
//
// An Aggregate describes how to rebuild state A from typed events E: New, Apply, and Codecs
// (JSON by default, the same Codec shape as eventbus/redisstream). Load rebuilds it from its
// latest snapshot, if any, plus the events after it, and returns the version to expect on the
// next Save; Save appends and, under a SnapshotPolicy (every N events), stores a snapshot of the
// new state. A snapshot that no longer decodes (the state's schema changed) is not an error:
// Load replays the stream from the start and reports Hooks.OnSnapshotFallback, and the next
// policy snapshot replaces it.
//
// # Hooks
//
// Hooks (a field of Aggregate, Projection, Outbox and pgstore.TxProjection) observe loads
// (from which snapshot, how many events replayed), appends and version conflicts, snapshots,
// each event a projection handles and each checkpoint it saves: OnLoad, OnAppend, OnConflict,
// OnSnapshot, OnSnapshotFallback, OnProject, OnCheckpoint, each with the call's ctx and an
// ...Info payload. A nil hook costs nothing; a set OnAppend, OnLoad or OnProject adds two clock
// reads per call to time it.
//
// # Projections and the outbox
//
// A Projection feeds every event, in position order, to a handler that maintains a read model,
// and saves a checkpoint (in a CheckpointStore) after it, so a restarted projection resumes
// where it stopped: at least once, since a crash between the handler and the checkpoint hands
// the event again. Rebuild resets the read model and the checkpoint, and the next Run replays
// from position 0 to the same read model. For exactly once, keep the read model in PostgreSQL
// and use pgstore.TxProjection, which commits the read model and the checkpoint together.
//
// An Outbox is the transactional outbox without a second table: the stored events are the
// outbox. It publishes them, decoded with its Codec, to any eventbus.Publisher (an
// eventbus.Topic, a redisstream.Topic) and checkpoints its progress, so an event whose Append
// committed is published even if the process dies before publishing it: at least once, in
// position order (so in order per stream). The publisher's ctx carries the stored event
// (Recorded), whose position makes a deduplication ID.
//
// # Stores
//
// Memory is the in-memory store (tests, examples, single-process applications). Every store
// passes the contract in package eventbus/eventstore/eventstoretest, so an application can move
// from one to another without its aggregates or subscribers noticing.
package eventstore
