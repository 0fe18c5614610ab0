package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/girder-go/girder/eventbus/eventstore/pgstore"
)

func init() { register(eventstoreRows) }

// No established Go event-store library could be had from the module proxy (it answers 403 for
// hallgren/eventsourcing and its eventstore/sql and sqlpgx modules, modernice/goes and
// looplab/eventhorizon), so the PostgreSQL append rows are measured against their floor: a bare
// pgx INSERT of the same rows into a table of the same shape, without the version check, the
// advisory lock and the NOTIFY. The load rows compare a load from a snapshot with a full replay.

// esLoadEvents is the length of the stream the load rows rebuild; the snapshot is taken
// esLoadTail events before its end.
const (
	esLoadEvents = 1000
	esLoadTail   = 10
	esBatch      = 100
	esStreams    = 64 // append rows cycle over this many streams
)

const esFloor = "pgx v5.12.0 INSERT (floor)"

type esItem struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

func (esItem) EventType() string { return "item.added" }

type esCart struct {
	Items map[string]int `json:"items"`
}

func esAggregate(s eventstore.Store, snaps eventstore.SnapshotStore) eventstore.Aggregate[esCart, esItem] {
	return eventstore.Aggregate[esCart, esItem]{
		Store:     s,
		Snapshots: snaps,
		New:       func() esCart { return esCart{Items: map[string]int{}} },
		Apply: func(c esCart, e esItem) esCart {
			c.Items[e.SKU] += e.Qty
			return c
		},
	}
}

func esEvents(n int) []eventstore.Event {
	evs, err := eventstore.Encode(eventstore.JSON[esItem]{}, "", make([]esItem, n)...)
	if err != nil {
		panic(err)
	}
	for i := range evs {
		evs[i].Data = fmt.Appendf(nil, `{"sku":"sku-%03d","qty":%d}`, i%100, i%7+1)
	}
	return evs
}

// esFill appends esLoadEvents events to stream "load-<name>" and, if snap, a snapshot
// esLoadTail events before the end; it returns the aggregate to load it with.
func esFill(ctx context.Context, s eventstore.Store, snaps eventstore.SnapshotStore, name string, snap bool) (eventstore.Aggregate[esCart, esItem], string, error) {
	stream := "load-" + name
	agg := esAggregate(s, nil)
	if snap {
		agg.Snapshots = snaps
	}
	evs := esEvents(esLoadEvents)
	for i := 0; i < len(evs); i += esBatch {
		if _, err := s.Append(ctx, stream, eventstore.Any, evs[i:i+esBatch]...); err != nil {
			return agg, "", err
		}
	}
	if snap {
		// Rebuild the state at esLoadEvents-esLoadTail for the snapshot.
		evs, err := s.ReadStream(ctx, stream, 1, esLoadEvents-esLoadTail)
		if err != nil {
			return agg, "", err
		}
		st := agg.New()
		for _, re := range evs {
			e, err := eventstore.JSON[esItem]{}.Unmarshal(re.Data)
			if err != nil {
				return agg, "", err
			}
			st = agg.Apply(st, e)
		}
		if err := eventstore.Snap(ctx, agg, stream, st, esLoadEvents-esLoadTail); err != nil {
			return agg, "", err
		}
	}
	return agg, stream, nil
}

func esLoad(b *testing.B, agg eventstore.Aggregate[esCart, esItem], stream string) {
	ctx := context.Background()
	for b.Loop() {
		if _, v, err := eventstore.Load(ctx, agg, stream); err != nil || v != esLoadEvents {
			b.Fatalf("Load = version %d, %v", v, err)
		}
	}
}

func esAppend(b *testing.B, s eventstore.Store, n int) {
	ctx := context.Background()
	evs := esEvents(n)
	i := 0
	for b.Loop() {
		if _, err := s.Append(ctx, fmt.Sprintf("append-%d-%d", n, i%esStreams), eventstore.Any, evs...); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func eventstoreRows(env *Env) []Row {
	mem := &esMemFixture{}
	rows := []Row{
		{Package: "eventstore", Op: "Memory Append, 1 event", Girder: func(b *testing.B) { esAppend(b, mem.get(b).store, 1) }},
		{Package: "eventstore", Op: fmt.Sprintf("Memory Append, %d events in one call", esBatch), Girder: func(b *testing.B) { esAppend(b, mem.get(b).store, esBatch) }},
		{Package: "eventstore", Op: fmt.Sprintf("Memory Load %d events: snapshot + %d", esLoadEvents, esLoadTail),
			Girder: func(b *testing.B) { f := mem.get(b); esLoad(b, f.snap, f.snapStream) },
			Peer:   fmt.Sprintf("girder Load, no snapshot (%d replayed)", esLoadEvents),
			PeerFn: func(b *testing.B) { f := mem.get(b); esLoad(b, f.full, f.fullStream) }},
	}
	if env.PostgresDSN == "" {
		return rows
	}
	pg := &esPGFixture{dsn: env.PostgresDSN}
	return append(rows,
		Row{Package: "eventstore", Op: "pgstore Append, 1 event", Peer: esFloor + ", 1 row",
			Girder: func(b *testing.B) { esAppend(b, pg.get(b).store, 1) },
			PeerFn: func(b *testing.B) { esFloorInsert(b, pg.get(b).pool, 1) }},
		Row{Package: "eventstore", Op: fmt.Sprintf("pgstore Append, %d events in one call", esBatch), Peer: fmt.Sprintf("%s, %d rows (unnest)", esFloor, esBatch),
			Girder: func(b *testing.B) { esAppend(b, pg.get(b).store, esBatch) },
			PeerFn: func(b *testing.B) { esFloorInsert(b, pg.get(b).pool, esBatch) }},
		Row{Package: "eventstore", Op: fmt.Sprintf("pgstore Load %d events: snapshot + %d", esLoadEvents, esLoadTail),
			Girder: func(b *testing.B) { f := pg.get(b); esLoad(b, f.snap, f.snapStream) },
			Peer:   fmt.Sprintf("girder Load, no snapshot (%d replayed)", esLoadEvents),
			PeerFn: func(b *testing.B) { f := pg.get(b); esLoad(b, f.full, f.fullStream) }},
	)
}

// esFloorInsert inserts n rows per operation into bench_floor.events, a table shaped like
// girder_events (identity position, unique (stream, version), bytea data), in one statement
// and one implicit transaction: what any event store on PostgreSQL must at least pay.
func esFloorInsert(b *testing.B, pool *pgxpool.Pool, n int) {
	ctx := context.Background()
	evs := esEvents(n)
	types := make([]string, n)
	data := make([][]byte, n)
	for i, e := range evs {
		types[i], data[i] = e.Type, e.Data
	}
	// Each call of this function (testing.Benchmark calls it with growing b.N) writes streams of
	// its own, so that its versions start at 1.
	run := esFloorRuns.Add(1)
	versions := map[int]int64{}
	i := 0
	for b.Loop() {
		s := i % esStreams
		stream := fmt.Sprintf("floor-%d-%d-%d", n, run, s)
		var err error
		if n == 1 {
			_, err = pool.Exec(ctx, `INSERT INTO bench_floor.events (stream, version, type, data) VALUES ($1, $2, $3, $4)`,
				stream, versions[s]+1, types[0], data[0])
		} else {
			_, err = pool.Exec(ctx, `INSERT INTO bench_floor.events (stream, version, type, data)
SELECT $1, $2 + u.ord, u.t, u.d FROM unnest($3::text[], $4::bytea[]) WITH ORDINALITY AS u(t, d, ord)`,
				stream, versions[s], types, data)
		}
		if err != nil {
			b.Fatal(err)
		}
		versions[s] += int64(n)
		i++
	}
}

var esFloorRuns atomic.Int64

type esMemFixture struct {
	once                   sync.Once
	err                    error
	store                  *eventstore.Memory
	snap, full             eventstore.Aggregate[esCart, esItem]
	snapStream, fullStream string
}

func (f *esMemFixture) get(b *testing.B) *esMemFixture {
	f.once.Do(func() {
		ctx := context.Background()
		f.store = eventstore.NewMemory()
		if f.snap, f.snapStream, f.err = esFill(ctx, f.store, f.store, "snap", true); f.err != nil {
			return
		}
		f.full, f.fullStream, f.err = esFill(ctx, f.store, f.store, "full", false)
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f
}

// esPGFixture connects on first use and lays out a fresh schema, bench_eventstore, and the
// floor's table.
type esPGFixture struct {
	dsn                    string
	once                   sync.Once
	err                    error
	pool                   *pgxpool.Pool
	store                  *pgstore.Store
	snap, full             eventstore.Aggregate[esCart, esItem]
	snapStream, fullStream string
}

func (f *esPGFixture) get(b *testing.B) *esPGFixture {
	f.once.Do(func() { f.err = f.setup(context.Background()) })
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f
}

func (f *esPGFixture) setup(ctx context.Context) error {
	pool, err := pgxpool.New(ctx, f.dsn)
	if err != nil {
		return err
	}
	f.pool = pool
	_, err = pool.Exec(ctx, `
DROP SCHEMA IF EXISTS bench_eventstore CASCADE;
DROP SCHEMA IF EXISTS bench_floor CASCADE;
CREATE SCHEMA bench_floor;
CREATE TABLE bench_floor.events (
	position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	stream      text        NOT NULL,
	version     bigint      NOT NULL,
	type        text        NOT NULL,
	data        bytea       NOT NULL,
	metadata    jsonb,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (stream, version)
)`)
	if err != nil {
		return err
	}
	if f.store, err = pgstore.New(pool, pgstore.Options{Schema: "bench_eventstore"}); err != nil {
		return err
	}
	if err := f.store.Migrate(ctx); err != nil {
		return err
	}
	if f.snap, f.snapStream, err = esFill(ctx, f.store, f.store, "snap", true); err != nil {
		return err
	}
	f.full, f.fullStream, err = esFill(ctx, f.store, f.store, "full", false)
	return err
}
