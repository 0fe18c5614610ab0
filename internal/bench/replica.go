package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/girder-go/girder/replica"
)

func init() { register(replicaRows) }

// replicaPeer is what the router is measured against: the same query on a bare pool.
const replicaPeer = "pgx v5.12.0 pgxpool, bare"

// replicaRows measure what routing adds to a query. They need a server (-postgres DSN) and are
// left out without one. One server plays both parts: the router's primary, and through a second
// pool whose probe reports it in recovery, its replica; so a routed read and a bare read reach
// the same server and differ only by the routing.
func replicaRows(env *Env) []Row {
	if env.PostgresDSN == "" {
		return nil
	}
	fix := &replicaFixture{dsn: env.PostgresDSN}
	bare := func(db func(*replicaFixture) *pgxpool.Pool) func(*testing.B) {
		return func(b *testing.B) {
			p := db(fix.get(b))
			replicaLoop(b, func(ctx context.Context) pgx.Row { return p.QueryRow(ctx, "SELECT 1") })
		}
	}
	bareReplica := bare(func(f *replicaFixture) *pgxpool.Pool { return f.replicaPool })
	barePrimary := bare(func(f *replicaFixture) *pgxpool.Pool { return f.primaryPool })
	return []Row{
		{Package: "replica", Op: "read SELECT 1 (ReadQueryRow vs pool.QueryRow)", Peer: replicaPeer, PeerFn: bareReplica,
			Girder: func(b *testing.B) {
				r := fix.get(b).router
				replicaLoop(b, func(ctx context.Context) pgx.Row { return r.ReadQueryRow(ctx, "SELECT 1") })
			}},
		{Package: "replica", Op: "read SELECT 1 carrying a replayed token", Peer: replicaPeer, PeerFn: bareReplica,
			Girder: func(b *testing.B) {
				f := fix.get(b)
				ctx := replica.WithToken(context.Background(), f.token)
				replicaLoop(b, func(context.Context) pgx.Row { return f.router.ReadQueryRow(ctx, "SELECT 1") })
			}},
		{Package: "replica", Op: "write path SELECT 1 (WriteQueryRow to the primary)", Peer: replicaPeer, PeerFn: barePrimary,
			Girder: func(b *testing.B) {
				r := fix.get(b).router
				replicaLoop(b, func(ctx context.Context) pgx.Row { return r.WriteQueryRow(ctx, "SELECT 1") })
			}},
		// The rows above differ by less than their run-to-run drift; these measure the routing
		// decision alone, which is the whole of what the router adds to a query.
		{Package: "replica", Op: "routing decision alone: Reader (no query)", Girder: func(b *testing.B) {
			r := fix.get(b).router
			replicaDecide(b, context.Background(), r.Reader)
		}},
		{Package: "replica", Op: "routing decision alone: Reader with a token", Girder: func(b *testing.B) {
			f := fix.get(b)
			replicaDecide(b, replica.WithToken(context.Background(), f.token), f.router.Reader)
		}},
		{Package: "replica", Op: "routing decision alone: Writer", Girder: func(b *testing.B) {
			r := fix.get(b).router
			replicaDecide(b, context.Background(), r.Writer)
		}},
	}
}

// replicaFixture connects on first use, so that rows of other packages run without a server.
type replicaFixture struct {
	dsn         string
	once        sync.Once
	err         error
	primaryPool *pgxpool.Pool
	replicaPool *pgxpool.Pool
	router      *replica.Router
	token       replica.Token // a position the "replica" is known to have replayed
}

func (f *replicaFixture) get(b *testing.B) *replicaFixture {
	f.once.Do(func() { f.err = f.open() })
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f
}

func (f *replicaFixture) open() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if f.primaryPool, err = pgxpool.New(ctx, f.dsn); err != nil {
		return err
	}
	if f.replicaPool, err = pgxpool.New(ctx, f.dsn); err != nil {
		return err
	}
	replicaDB := replica.DB(f.replicaPool)
	f.router, err = replica.New(replica.Options{
		Primary:       replica.Node{DB: f.primaryPool},
		Replicas:      []replica.Node{{DB: f.replicaPool}},
		CheckInterval: time.Second,
		CheckTimeout:  5 * time.Second,
		DownAfter:     3,
		Probe: func(ctx context.Context, db replica.DB) (replica.Probe, error) {
			p, err := replica.SQLProbe(ctx, db)
			p.InRecovery = db == replicaDB
			return p, err
		},
	})
	if err != nil {
		return err
	}
	if err := f.router.Ready(ctx); err != nil {
		return err
	}
	st := f.router.Status()
	if !st[1].Fit {
		return fmt.Errorf("replica bench: the stand-in replica is not fit: %v", st[1].Err)
	}
	if err := f.router.ReadQueryRow(ctx, "SELECT 1").Scan(new(int)); err != nil {
		return errors.Join(errors.New("replica bench: first read"), err)
	}
	f.token = replica.TokenAt(st[1].LSN)
	return nil
}

func replicaLoop(b *testing.B, row func(context.Context) pgx.Row) {
	ctx := context.Background()
	var n int
	for b.Loop() {
		if err := row(ctx).Scan(&n); err != nil {
			b.Fatal(err)
		}
	}
}

func replicaDecide(b *testing.B, ctx context.Context, route func(context.Context) (replica.DB, error)) {
	for b.Loop() {
		if _, err := route(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
