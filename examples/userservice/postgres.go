package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/girder-go/girder/replica"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
)

// schema is created at start when missing. id is a bigserial so that NextID can take numbers from
// its sequence; the rows themselves are written with an explicit id (see pgStore.Save).
const schema = `CREATE TABLE IF NOT EXISTS users (
	id         bigserial   PRIMARY KEY,
	name       text        NOT NULL,
	email      text        NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
)`

// pgStore is the userStore on PostgreSQL with streaming replicas, through girder's replica
// router: NextID and Save go to the primary, Get to a replica that is up and not lagging, or,
// when ctx carries a token, to one that has replayed it (else, after TokenPolicy.Wait, to the
// primary).
type pgStore struct {
	router *replica.Router
	pools  []*pgxpool.Pool
}

var _ userStore = (*pgStore)(nil)

// pgOptions is what openPostgres needs besides the connection strings.
type pgOptions struct {
	checkEvery time.Duration // replica health and lag checks
	maxLag     time.Duration // a replica further behind than this gets no reads
	rywWait    time.Duration // how long a read with a token waits for a replica before the primary
	routed     func(ctx context.Context, r replica.RouteInfo)
	logger     *slog.Logger
	tracing    trace.TracerProvider // records every query through otelpgx; nil means none
	metrics    *metrics             // hooks the router; nil for none

}

// openPostgres connects to the primary and replicas, waits for the first round of checks (roles
// and lags known) and creates the table if it is missing. The router owns the pools: Close closes
// them.
func openPostgres(ctx context.Context, primary string, replicas []string, o pgOptions) (*pgStore, error) {
	s := &pgStore{}
	for _, dsn := range append([]string{primary}, replicas...) {
		p, err := openPool(ctx, dsn, o.tracing)
		if err != nil {
			s.closePools()
			return nil, err
		}
		s.pools = append(s.pools, p)
	}
	var nodes []replica.Node
	for _, p := range s.pools[1:] {
		nodes = append(nodes, replica.Node{DB: p})
	}
	router, err := replica.New(replica.Options{
		Primary:       replica.Node{DB: s.pools[0]},
		Replicas:      nodes,
		CheckInterval: o.checkEvery,
		// A check also dials: a first connection (TLS, SCRAM) may take longer than a short interval.
		CheckTimeout: max(o.checkEvery, 2*time.Second),
		// One lost check does not stop the writes.
		DownAfter:  2,
		MaxLagTime: o.maxLag,
		// A replica that receives nothing (its streaming connection broke) reports no delay in
		// time, having replayed all it received; the bytes behind the primary still grow.
		MaxLagBytes: 64 << 20,
		TokenPolicy: replica.TokenPolicy{Wait: o.rywWait},
		Hooks:       o.metrics.routerHooks(replica.Hooks{OnRoute: o.routed}),
		Logger:      o.logger,
	})
	if err != nil {
		s.closePools()
		return nil, fmt.Errorf("userservice: postgres: %w", err)
	}
	s.router = router
	if err := s.init(ctx, o.checkEvery); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openPool makes a lazily connecting pool whose queries become spans of tp through otelpgx, the
// OpenTelemetry tracer for pgx, on girder's provider.
func openPool(ctx context.Context, dsn string, tp trace.TracerProvider) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("userservice: postgres: %w", err)
	}
	if tp != nil {
		cfg.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithTracerProvider(tp))
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("userservice: postgres: %w", err)
	}
	return p, nil
}

func (s *pgStore) closePools() {
	for _, p := range s.pools {
		p.Close()
	}
}

// init waits for the first round of checks, then creates the table, retrying for a while: the
// servers may still be starting (a docker compose up, a test's containers).
func (s *pgStore) init(ctx context.Context, retryEvery time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.router.Ready(ctx); err != nil {
		return fmt.Errorf("userservice: postgres: first check: %w", err)
	}
	for {
		_, err := s.router.Exec(ctx, schema)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("userservice: postgres: create table: %w", err)
		case <-time.After(retryEvery):
		}
	}
}

// Close stops the router's checks and closes the pools.
func (s *pgStore) Close() error {
	s.router.Close()
	s.closePools()
	return nil
}

// Status is the router's view of every node, for /debug/stats.
func (s *pgStore) Status() []replica.NodeStatus { return s.router.Status() }

// NextID implements userStore: a number from the table's sequence, on the primary.
func (s *pgStore) NextID(ctx context.Context) (int64, error) {
	var id int64
	err := s.router.WriteQueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('users', 'id'))`).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("userservice: next id: %w", err)
	}
	return id, nil
}

// Get implements userStore with ReadQueryRow: the router picks the node from ctx's token.
func (s *pgStore) Get(ctx context.Context, id int64) (User, error) {
	var u User
	err := s.router.ReadQueryRow(ctx,
		`SELECT id, name, email, created_at, updated_at FROM users WHERE id = $1`, id,
	).Scan(&u.ID, &u.Name, &u.Email, &u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, errNoUser
	}
	if err != nil {
		return User{}, fmt.Errorf("userservice: get user %d: %w", id, err)
	}
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, nil
}

// Save implements userStore with ExecToken: an upsert on the primary, then the primary's WAL
// position, which is the token that makes a later read see this write. The upsert keeps
// created_at, so Save serves both creates and updates.
func (s *pgStore) Save(ctx context.Context, u User) (replica.Token, error) {
	_, tok, err := s.router.ExecToken(ctx,
		`INSERT INTO users (id, name, email, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email, updated_at = excluded.updated_at`,
		u.ID, u.Name, u.Email, u.CreatedAt, u.UpdatedAt)
	if err != nil {
		return replica.Token{}, fmt.Errorf("userservice: save user %d: %w", u.ID, err)
	}
	return tok, nil
}
