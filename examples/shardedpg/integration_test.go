package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/girder-go/girder/internal/testenv"
)

// TestOnRealServers starts three PostgreSQL primaries with one streaming replica each, once for
// the package, and runs every scenario on them in turn: the shard-down one last, as it stops
// servers.
func TestOnRealServers(t *testing.T) {
	testenv.Require(t)
	began := time.Now()
	servers := testenv.StartPostgresShards(t, 3)
	t.Logf("6 servers up in %v", time.Since(began).Round(time.Millisecond))
	var ps, rs []*pgxpool.Config
	for _, sh := range servers {
		ps, rs = append(ps, sh.Primary.PoolConfig(t)), append(rs, sh.Replica.PoolConfig(t))
	}
	cfgs := ShardConfigs(ps, rs, nil)
	ctx := context.Background()
	if err := CreateSplitDatabase(ctx, cfgs[len(cfgs)-1]); err != nil {
		t.Fatal(err)
	}

	seed := testSeed(t)
	dur, moves := 3*time.Second, 1
	if s := os.Getenv("GIRDER_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("GIRDER_SOAK=%q: %v", s, err)
		}
		dur, moves = d, max(1, int(d/(4*time.Second)))
	}

	// The fence refuses writes at once: every error the traffic sees during the move is counted,
	// and none of them may have been applied.
	t.Run("MoveFenceRefuses", func(t *testing.T) {
		res := runMove(t, Config{Shards: cfgs, Keys: 3000, Workers: 8, Duration: dur, Seed: seed, FenceWait: 0, Moves: moves})
		if res.Load.Errors != res.Load.Refused {
			t.Errorf("%d errors but only %d refused by the fence: %v", res.Load.Errors, res.Load.Refused, res.Load.ErrorsByKind)
		}
	})
	// The fence holds writes until the switch: no error at all, the writes just wait. With
	// -metrics: the table's version after the moves, every server up, and writes routed to the
	// primaries of the shards the range moved between.
	t.Run("MoveFenceWaits", func(t *testing.T) {
		prom := filepath.Join(t.TempDir(), "shardedpg.prom")
		res := runMove(t, Config{Shards: cfgs, Keys: 3000, Workers: 8, Duration: dur, Seed: seed + 1, FenceWait: 10 * time.Second, Moves: moves, Metrics: prom})
		if res.Load.Errors != 0 {
			t.Errorf("%d errors with a waiting fence: %v (first: %s)", res.Load.Errors, res.Load.ErrorsByKind, res.Load.FirstError)
		}
		text, err := os.ReadFile(prom)
		if err != nil {
			t.Fatal(err)
		}
		f := parseMetrics(t, text)
		if v := f.Value(t, "girder_shard_range_table_version", "router", rangesName); v != float64(len(res.Moves)+1) {
			t.Errorf("table version %v after %d moves", v, len(res.Moves))
		}
		for _, sc := range cfgs {
			if v := f.Value(t, "girder_replica_node_up", "router", sc.Name); v != float64(1+len(sc.Replicas)) {
				t.Errorf("%s: %v servers up, want %d:\n%s", sc.Name, v, 1+len(sc.Replicas), f.Dump("girder_replica_node_up"))
			}
		}
		for _, sh := range []string{cfgs[1].Name, cfgs[len(cfgs)-1].Name} {
			if v := f.Value(t, "girder_replica_routes_total", "router", sh, "node", sh+"-primary", "reason", "write"); v == 0 {
				t.Errorf("no write routed to %s's primary:\n%s", sh, f.Dump("girder_replica_routes_total"))
			}
		}
	})
	t.Run("ShardDown", func(t *testing.T) { testShardDown(t, cfgs, servers[1]) })
}

func testSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("GIRDER_SEED"), 10, 64); err == nil && v != 0 {
		seed = v
	}
	t.Logf("GIRDER_SEED=%d", seed)
	return seed
}

func runMove(t *testing.T, cfg Config) Result {
	t.Helper()
	var out bytes.Buffer
	res, err := run(context.Background(), &out, cfg)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	c := res.Check
	if !c.OK() || c.Skipped != 0 || c.Rows != c.Want || c.Sum != c.WantSum {
		t.Errorf("check failed: %+v", c)
	}
	if len(res.Load.Wrong) > 0 {
		t.Errorf("wrong answers: %v", res.Load.Wrong)
	}
	if res.Load.Ambiguous != 0 {
		t.Errorf("%d writes failed with an unknown outcome", res.Load.Ambiguous)
	}
	for i, m := range res.Moves {
		if m.Version != uint64(i+2) || m.Rows == 0 || m.Copied == 0 || m.Deleted != m.Rows {
			t.Errorf("move %d: %+v", i, m)
		}
	}
	if len(res.Moves) == 0 || cfg.Moves == 1 && len(res.Moves) != 1 {
		t.Errorf("%d moves, want %d", len(res.Moves), cfg.Moves)
	}
	for _, want := range []string{"(token-", "shard-1-primary (write)", "OK: nothing lost"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	return res
}

// testShardDown stops shard-1's primary, then its replica: only shard-1's keys fail, with an error
// naming shard-1, and the list answers from the other shards when asked for a partial answer.
func testShardDown(t *testing.T, cfgs []ShardConfig, down testenv.PGShard) {
	ctx := context.Background()
	s, err := OpenStore(ctx, cfgs, initialRanges(3000, 3), routerOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.OpTimeout = 3 * time.Second
	if _, err := s.Seed(ctx, 3000); err != nil {
		t.Fatal(err)
	}
	keys := map[string]int64{"shard-0": 10, "shard-1": 1010, "shard-2": 2010}
	// Replicas have replayed the seed before anything stops.
	sess := NewSession()
	for _, k := range keys {
		if err := s.Add(ctx, sess, k, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, sess, k); err != nil {
			t.Fatal(err)
		}
	}
	wantShard1 := func(what string, err error) {
		t.Helper()
		var se *ShardError
		if !errors.As(err, &se) || se.Shard != "shard-1" || !strings.Contains(err.Error(), "shard-1") {
			t.Errorf("%s: error %v, want a *ShardError naming shard-1", what, err)
		}
	}

	down.Primary.Stop(t)
	for name, k := range keys {
		start := time.Now()
		err := s.Add(ctx, NewSession(), k, 1)
		if name == "shard-1" {
			wantShard1("write to a key of shard-1 with its primary down", err)
			t.Logf("write to shard-1 failed in %v: %v", time.Since(start).Round(time.Millisecond), err)
		} else if err != nil {
			t.Errorf("write to %s with shard-1's primary down: %v", name, err)
		}
		// Reads without a token still work everywhere: shard-1's replica is up.
		if _, err := s.Get(ctx, nil, k); err != nil {
			t.Errorf("read of %s's key %d with shard-1's primary down: %v", name, k, err)
		}
	}
	if top, err := s.Top(ctx, 10, false); err != nil || len(top) != 10 {
		t.Errorf("list with shard-1's primary down (its replica up): %d rows, %v", len(top), err)
	}

	down.Replica.Stop(t)
	for name, k := range keys {
		_, err := s.Get(ctx, nil, k)
		if name == "shard-1" {
			wantShard1("read of a key of shard-1 with both its servers down", err)
		} else if err != nil {
			t.Errorf("read of %s with shard-1 down: %v", name, err)
		}
	}
	top, err := s.Top(ctx, 10, true)
	wantShard1("partial list with shard-1 down", err)
	if len(top) != 10 {
		t.Errorf("partial list: %d rows, want 10 from the shards that answered", len(top))
	}
	for _, a := range top {
		if a.ID >= 1000 && a.ID < 2000 {
			t.Errorf("partial list has account %d of shard-1", a.ID)
		}
	}
	_, err = s.Top(ctx, 10, false)
	wantShard1("full list with shard-1 down", err)
	t.Logf("list with shard-1 down: %v", err)
}
