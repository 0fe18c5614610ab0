package testenv

import (
	"fmt"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// SmallPostgresArgs are postgres settings small enough for several primaries and replicas to share
// two cores and a little memory: a small buffer cache, few connections and workers, no parallel
// queries, a small WAL. Replicas get the same ones (a hot standby needs max_connections and
// max_worker_processes at least as large as its primary's).
func SmallPostgresArgs() []string {
	return []string{
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=40",
		"-c", "work_mem=1MB",
		"-c", "maintenance_work_mem=16MB",
		"-c", "max_worker_processes=4",
		"-c", "max_parallel_workers=0",
		"-c", "max_parallel_workers_per_gather=0",
		"-c", "max_wal_size=64MB",
		"-c", "min_wal_size=32MB",
		"-c", "wal_keep_size=64MB",
		"-c", "autovacuum_max_workers=1",
	}
}

// shardWait is postgresWait with room for six servers initialising at once on a busy machine:
// each wait's own startup timeout (a minute by default) is raised to the deadline.
func shardWait() testcontainers.CustomizeRequestOption {
	const d = 150 * time.Second
	return testcontainers.WithWaitStrategyAndDeadline(d,
		wait.ForExec([]string{"pg_isready", "-h", "127.0.0.1", "-U", "postgres"}).WithStartupTimeout(d),
		wait.ForListeningPort(postgresPort).WithStartupTimeout(d),
	)
}

// PGShard is one shard's servers: a PostgreSQL primary and one streaming replica of it.
type PGShard struct {
	Primary *Postgres
	Replica *Postgres
}

// StartPostgresShards starts n independent PostgreSQL primaries (aliases pg-shard-0 …) and one
// streaming replica of each (pg-shard-0-replica …) on one Docker network, all with
// SmallPostgresArgs, started in parallel. Call it once per test package (from the test that owns
// the servers) and share the result: 2n servers take a few seconds to start.
func StartPostgresShards(t testing.TB, n int) []PGShard {
	t.Helper()
	nw := newNetwork(t)
	args := SmallPostgresArgs()
	shards := make([]PGShard, n)
	parallel(t, n, func(i int, pt testing.TB) {
		alias := fmt.Sprintf("pg-shard-%d", i)
		env := map[string]string{"POSTGRES_PASSWORD": Password}
		shards[i].Primary = &Postgres{run(pt, append([]string{"postgres"}, args...), postgresPort, nw, alias, env, shardWait())}
		renv := map[string]string{"POSTGRES_PASSWORD": Password, "PRIMARY_HOST": alias}
		shards[i].Replica = &Postgres{run(pt, append([]string{"replica"}, args...), postgresPort, nw, alias+"-replica", renv, shardWait())}
	})
	return shards
}
