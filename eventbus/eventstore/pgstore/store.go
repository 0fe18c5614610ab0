package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure a Store. The zero value is the default.
type Options struct {
	// Schema holds the tables (events, snapshots, checkpoints); "": public. It must be a plain
	// SQL identifier (letters, digits, underscores).
	Schema string
	// PollInterval is how long a caught-up subscriber waits for a notification before reading
	// again anyway (the fallback if a NOTIFY is lost); 0: 1 s.
	PollInterval time.Duration
	// BatchSize is how many events a subscriber reads per query; 0: 500.
	BatchSize int
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Validate reports every problem with o, or nil; New calls it.
func (o Options) Validate() error {
	var errs []error
	if o.Schema != "" && !identRE.MatchString(o.Schema) {
		errs = append(errs, fmt.Errorf("pgstore: Options.Schema %q is not a plain identifier", o.Schema))
	}
	if o.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("pgstore: Options.PollInterval %v is negative", o.PollInterval))
	}
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("pgstore: Options.BatchSize %d is negative", o.BatchSize))
	}
	return errors.Join(errs...)
}

// Store is the PostgreSQL event store and snapshot store. Safe for concurrent use; the zero value
// is not usable (call New). It has no Close: the pool is the caller's, and a Subscribe ends
// with its ctx.
type Store struct {
	pool        *pgxpool.Pool
	opts        Options
	schema      string
	events      string // qualified table names
	snaps       string
	checkpoints string
	channel     string
	lockKey     int64

	// beforeCommit, if set (tests), runs inside Append after the insert, before the commit.
	beforeCommit func(ctx context.Context, stream string)
}

var (
	_ eventstore.Store           = (*Store)(nil)
	_ eventstore.SnapshotStore   = (*Store)(nil)
	_ eventstore.CheckpointStore = (*Store)(nil)
)

// New returns a store over pool. It does not touch the database: call Migrate once (at
// deployment or start) to create the schema.
func New(pool *pgxpool.Pool, opts Options) (*Store, error) {
	var errs []error
	if pool == nil {
		errs = append(errs, errors.New("pgstore: New: nil pool"))
	}
	if err := opts.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Second
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 500
	}
	schema := opts.Schema
	if schema == "" {
		schema = "public"
	}
	s := &Store{pool: pool, opts: opts, schema: schema,
		events: schema + ".girder_events", snaps: schema + ".girder_snapshots", checkpoints: schema + ".girder_checkpoints",
		channel: "girder_events_" + schema}
	s.lockKey = lockKey(schema)
	return s, nil
}

// lockKey is the advisory lock serializing appends: one per schema (FNV-1a of its name).
func lockKey(schema string) int64 {
	h := uint64(14695981039346656037)
	for i := range len(schema) {
		h ^= uint64(schema[i])
		h *= 1099511628211
	}
	return int64(h)
}

// Migrate creates the schema, the events, snapshots and checkpoints tables and their indexes if
// they do not exist. It is idempotent. Cost: one transaction of DDL.
func (s *Store) Migrate(ctx context.Context) error {
	ddl := fmt.Sprintf(`
CREATE SCHEMA IF NOT EXISTS %[1]s;
CREATE TABLE IF NOT EXISTS %[2]s (
	position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	stream      text        NOT NULL,
	version     bigint      NOT NULL,
	type        text        NOT NULL,
	data        bytea       NOT NULL,
	metadata    jsonb,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT girder_events_stream_version UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS %[3]s (
	stream      text PRIMARY KEY,
	version     bigint      NOT NULL,
	data        bytea       NOT NULL,
	recorded_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS %[4]s (
	name text PRIMARY KEY,
	next bigint NOT NULL
);`, s.schema, s.events, s.snaps, s.checkpoints)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	// Two processes migrating at once would race on CREATE … IF NOT EXISTS.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	return nil
}

// Append implements eventstore.Store in one transaction: it takes the schema's advisory
// transaction lock (so appends commit one at a time, in position order: see the package doc),
// reads the stream's version, inserts the events in one statement and notifies subscribers.
// Cost: one transaction of four round trips, whatever the number of events.
func (s *Store) Append(ctx context.Context, stream string, expected int64, events ...eventstore.Event) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	var res eventstore.AppendResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		res, err = s.appendTx(ctx, tx, stream, expected, events...)
		if err == nil && s.beforeCommit != nil {
			s.beforeCommit(ctx, stream)
		}
		return err
	})
	return appended(stream, res, err)
}

// AppendTx is Append inside the caller's transaction: the events commit or roll back with the
// caller's other writes (an outbox, a read model). The advisory lock it takes is held until
// that transaction ends, so keep it short.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, stream string, expected int64, events ...eventstore.Event) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := s.appendTx(ctx, tx, stream, expected, events...)
	return appended(stream, res, err)
}

// appended is what Append and AppendTx return: a version conflict as it is (with the stream's
// current version in res), any other error prefixed with the stream.
func appended(stream string, res eventstore.AppendResult, err error) (eventstore.AppendResult, error) {
	if err == nil {
		return res, nil
	}
	var vc *eventstore.VersionConflictError
	if errors.As(err, &vc) {
		return res, err
	}
	return eventstore.AppendResult{}, fmt.Errorf("pgstore: append to %q: %w", stream, err)
}

// appendTx is AppendTx after validation, its errors unwrapped: Append wraps them once, with
// those of its transaction.
func (s *Store) appendTx(ctx context.Context, tx pgx.Tx, stream string, expected int64, events ...eventstore.Event) (eventstore.AppendResult, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey); err != nil {
		return eventstore.AppendResult{}, err
	}
	var version int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s.events+` WHERE stream = $1`, stream).Scan(&version); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := eventstore.CheckExpected(stream, expected, version); err != nil {
		return eventstore.AppendResult{}, err
	}
	types := make([]string, len(events))
	data := make([][]byte, len(events))
	meta := make([]*string, len(events))
	for i, e := range events {
		types[i], data[i] = e.Type, e.Data
		if data[i] == nil {
			data[i] = []byte{}
		}
		if len(e.Metadata) > 0 {
			b, err := json.Marshal(e.Metadata)
			if err != nil {
				return eventstore.AppendResult{}, err
			}
			m := string(b)
			meta[i] = &m
		}
	}
	var last int64
	err := tx.QueryRow(ctx, `
WITH ins AS (
	INSERT INTO `+s.events+` (stream, version, type, data, metadata)
	SELECT $1, $2 + u.ord, u.t, u.d, u.m::jsonb
	FROM unnest($3::text[], $4::bytea[], $5::text[]) WITH ORDINALITY AS u(t, d, m, ord)
	ORDER BY u.ord
	RETURNING position
)
SELECT max(position) FROM ins`, stream, version, types, data, meta).Scan(&last)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			// Unreachable under the advisory lock; kept so that a writer bypassing it still
			// gets the sentinel.
			return eventstore.AppendResult{}, &eventstore.VersionConflictError{Stream: stream, Expected: expected, Actual: -1}
		}
		return eventstore.AppendResult{}, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, fmt.Sprint(last)); err != nil {
		return eventstore.AppendResult{}, err
	}
	return eventstore.AppendResult{Version: version + int64(len(events)), Position: last}, nil
}

const columns = `stream, version, position, type, data, metadata::text, recorded_at`

func scan(rows pgx.Rows) ([]eventstore.RecordedEvent, error) {
	defer rows.Close()
	var out []eventstore.RecordedEvent
	for rows.Next() {
		var e eventstore.RecordedEvent
		var meta *string
		if err := rows.Scan(&e.Stream, &e.Version, &e.Position, &e.Type, &e.Data, &meta, &e.Time); err != nil {
			return nil, err
		}
		if meta != nil {
			if err := json.Unmarshal([]byte(*meta), &e.Metadata); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func limitArg(limit int) any {
	if limit <= 0 {
		return nil // LIMIT NULL: no limit
	}
	return int64(limit)
}

// ReadStream implements eventstore.Store. Cost: one query on the (stream, version) index.
func (s *Store) ReadStream(ctx context.Context, stream string, fromVersion int64, limit int) ([]eventstore.RecordedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM `+s.events+` WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3`,
		stream, fromVersion, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("pgstore: read stream %q: %w", stream, err)
	}
	out, err := scan(rows)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read stream %q: %w", stream, err)
	}
	return out, nil
}

// ReadAll implements eventstore.Store. Cost: one query on the position index.
func (s *Store) ReadAll(ctx context.Context, fromPosition int64, limit int) ([]eventstore.RecordedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM `+s.events+` WHERE position >= $1 ORDER BY position LIMIT $2`,
		fromPosition, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("pgstore: read all: %w", err)
	}
	out, err := scan(rows)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read all: %w", err)
	}
	return out, nil
}

// Subscribe implements eventstore.Store. It holds one connection of the pool (taken out of it)
// for LISTEN while it runs; it reads in batches of Options.BatchSize, and once caught up waits for
// a NOTIFY from an Append, or Options.PollInterval at most, before reading again.
func (s *Store) Subscribe(ctx context.Context, fromPosition int64, h eventstore.Handler) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: subscribe: %w", err)
	}
	conn := pc.Hijack() // a listening connection is not returned to the pool
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return fmt.Errorf("pgstore: subscribe: %w", err)
	}
	next := max(fromPosition, 1)
	for {
		batch, err := s.ReadAll(ctx, next, s.opts.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		for _, e := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := h(ctx, e); err != nil {
				return &eventstore.HandlerError{Event: e, Err: err}
			}
			next = e.Position + 1
		}
		if len(batch) == s.opts.BatchSize {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, s.opts.PollInterval)
		_, err = conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err) {
			return fmt.Errorf("pgstore: subscribe: wait for notification: %w", err)
		}
	}
}

// SaveSnapshot implements eventstore.SnapshotStore: an upsert that keeps a later snapshot.
func (s *Store) SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error {
	if snap.Time.IsZero() {
		snap.Time = time.Now()
	}
	if snap.Data == nil {
		snap.Data = []byte{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.snaps+` AS s (stream, version, data, recorded_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (stream) DO UPDATE SET version = excluded.version, data = excluded.data, recorded_at = excluded.recorded_at
WHERE s.version <= excluded.version`, snap.Stream, snap.Version, snap.Data, snap.Time)
	if err != nil {
		return fmt.Errorf("pgstore: save snapshot of %q: %w", snap.Stream, err)
	}
	return nil
}

// LoadSnapshot implements eventstore.SnapshotStore.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, bool, error) {
	snap := eventstore.Snapshot{Stream: stream}
	err := s.pool.QueryRow(ctx, `SELECT version, data, recorded_at FROM `+s.snaps+` WHERE stream = $1`, stream).
		Scan(&snap.Version, &snap.Data, &snap.Time)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Snapshot{}, false, nil
	}
	if err != nil {
		return eventstore.Snapshot{}, false, fmt.Errorf("pgstore: load snapshot of %q: %w", stream, err)
	}
	return snap, true, nil
}
