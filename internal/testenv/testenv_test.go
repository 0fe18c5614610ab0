package testenv_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/internal/testenv"
)

func TestRedisAnswers(t *testing.T) {
	r := testenv.StartRedis(t)
	c := r.Client(t)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)
}

func TestRedisNodesAreIndependent(t *testing.T) {
	nodes := testenv.StartRedisNodes(t, 2)
	ctx := context.Background()
	a, b := nodes[0].Client(t), nodes[1].Client(t)
	require.NoError(t, a.Set(ctx, "only-a", "1", 0).Err())
	n, err := b.Exists(ctx, "only-a").Result()
	require.NoError(t, err)
	require.Zero(t, n)
	require.NotEqual(t, nodes[0].MustAddr(t), nodes[1].MustAddr(t))
}

// eventually polls f every 100 ms until it returns nil or 30 s have passed.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPostgresClusterReplicates(t *testing.T) {
	cl := testenv.StartPostgresCluster(t, 2)
	ctx := context.Background()
	primary := cl.Primary.Pool(t)

	var inRecovery bool
	require.NoError(t, primary.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
	require.False(t, inRecovery, "primary must not be in recovery")

	_, err := primary.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, name text)")
	require.NoError(t, err)
	_, err = primary.Exec(ctx, "INSERT INTO items VALUES (1, 'one')")
	require.NoError(t, err)

	var replicas []*pgxpool.Pool
	for _, r := range cl.Replicas {
		replicas = append(replicas, r.Pool(t))
	}
	for i, r := range replicas {
		require.NoError(t, r.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
		require.True(t, inRecovery, "replica %d must be in recovery", i)
		eventually(t, func() error {
			var name string
			return r.QueryRow(ctx, "SELECT name FROM items WHERE id = 1").Scan(&name)
		})
		_, err := r.Exec(ctx, "INSERT INTO items VALUES (2, 'two')")
		require.ErrorContains(t, err, "read-only transaction", "replica %d must refuse writes", i)
	}

	// Stop and start a replica: the mapped port changes, the pool follows, replication resumes.
	r0 := cl.Replicas[0]
	before := r0.MustAddr(t)
	r0.Stop(t)
	_, err = primary.Exec(ctx, "INSERT INTO items VALUES (3, 'three')")
	require.NoError(t, err)
	r0.Start(t)
	t.Logf("replica 0 moved from %s to %s", before, r0.MustAddr(t))
	eventually(t, func() error {
		var name string
		return replicas[0].QueryRow(ctx, "SELECT name FROM items WHERE id = 3").Scan(&name)
	})
	require.NoError(t, replicas[0].QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
	require.True(t, inRecovery)
}

// TestRestartWhileClientsRedial stops and starts a Redis container while goroutines keep asking for
// its address and exec'ing in it, as clients redialing a stopped server do. Every call that went
// through testcontainers closed the container's Docker client when it returned, so one of them
// racing Start broke Start's request ("connection broken: CloseIdleConnections called").
func TestRestartWhileClientsRedial(t *testing.T) {
	r := testenv.StartRedis(t)
	c := r.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if g == 0 {
					_, _ = r.TryExec(ctx, "true")
				} else {
					_, _ = r.Addr(ctx)
				}
			}
		})
	}
	for range 3 {
		r.Stop(t)
		_, err := r.Addr(context.Background())
		require.Error(t, err, "a stopped container publishes no port")
		r.Start(t)
		require.NoError(t, c.Ping(context.Background()).Err())
	}
	cancel()
	wg.Wait()
}

// TestExecOutput checks that Exec returns what the command wrote to stdout and stderr,
// without Docker's stream framing.
func TestExecOutput(t *testing.T) {
	r := testenv.StartRedis(t)
	require.Equal(t, "PONG\n", r.Exec(t, "redis-cli", "ping"))
	require.Equal(t, "out\nerr\n", r.Exec(t, "sh", "-c", "echo out; sleep 0.1; echo err >&2"))
	_, err := r.TryExec(context.Background(), "sh", "-c", "echo bad >&2; exit 3")
	require.ErrorContains(t, err, "exit 3: bad")
}
