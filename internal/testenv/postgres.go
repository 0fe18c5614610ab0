package testenv

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

const (
	postgresPort = "5432/tcp"
	// Password is the password of the postgres user in every test server.
	Password = "girder"
)

// Postgres is a PostgreSQL 15 server in a container: a primary, or a streaming replica.
type Postgres struct {
	*Container
}

func postgresWait() testcontainers.CustomizeRequestOption {
	return testcontainers.WithWaitStrategyAndDeadline(2*time.Minute,
		wait.ForExec([]string{"pg_isready", "-h", "127.0.0.1", "-U", "postgres"}),
		wait.ForListeningPort(postgresPort),
	)
}

// StartPostgres starts a PostgreSQL primary on its own.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	return &Postgres{run(t, []string{"postgres"}, postgresPort, nil, "pg-primary",
		map[string]string{"POSTGRES_PASSWORD": Password}, postgresWait())}
}

// Cluster is a PostgreSQL primary with streaming replicas on one Docker network.
type Cluster struct {
	Primary  *Postgres
	Replicas []*Postgres
}

// StartPostgresCluster starts a primary (alias pg-primary) and n streaming replicas of it (aliases
// pg-replica-0 …), cloned with pg_basebackup and started in parallel.
func StartPostgresCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	nw := newNetwork(t)
	env := map[string]string{"POSTGRES_PASSWORD": Password}
	cl := &Cluster{Primary: &Postgres{run(t, []string{"postgres"}, postgresPort, nw, "pg-primary", env, postgresWait())}}
	cl.Replicas = make([]*Postgres, n)
	renv := map[string]string{"POSTGRES_PASSWORD": Password, "PRIMARY_HOST": "pg-primary"}
	parallel(t, n, func(i int, pt testing.TB) {
		cl.Replicas[i] = &Postgres{run(pt, []string{"replica"}, postgresPort, nw, fmt.Sprintf("pg-replica-%d", i), renv, postgresWait())}
	})
	return cl
}

// DSN returns a connection string for the server's current address.
func (p *Postgres) DSN(t testing.TB) string {
	t.Helper()
	return dsn(p.MustAddr(t))
}

func dsn(addr string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", Password), Host: addr, Path: "/postgres", RawQuery: "sslmode=disable"}
	return u.String()
}

// PoolConfig returns a pgxpool configuration whose connections always dial the server's current
// address, so a pool made from it reconnects after Stop and Start.
func (p *Postgres) PoolConfig(t testing.TB) *pgxpool.Config {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(p.DSN(t))
	if err != nil {
		t.Fatalf("testenv: parse DSN: %v", err)
	}
	cfg.ConnConfig.DialFunc = p.dial
	cfg.ConnConfig.LookupFunc = func(context.Context, string) ([]string, error) { return []string{"container"}, nil }
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.ConnConfig.Fallbacks = nil
	return cfg
}

// Pool returns a connection pool to the server, closed by t.Cleanup.
func (p *Postgres) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), p.PoolConfig(t))
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("testenv: ping %s: %v", p.alias, err)
	}
	return pool
}
