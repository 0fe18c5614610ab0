package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/shard"
)

// TestMain runs main instead of the tests when GIRDER_SHARDEDPG_MAIN=1, so that a test can check
// what the command does without servers.
func TestMain(m *testing.M) {
	if os.Getenv("GIRDER_SHARDEDPG_MAIN") == "1" {
		os.Args = append([]string{"shardedpg"}, strings.Fields(os.Getenv("GIRDER_SHARDEDPG_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestNoServersSaysWhatItNeeds: without -primaries the command exits 2 naming what to start.
func TestNoServersSaysWhatItNeeds(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GIRDER_SHARDEDPG_MAIN=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\n%s", err, out)
	}
	for _, want := range []string{"needs PostgreSQL servers", "-primaries", "-replicas", "README.md"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestMismatchedReplicasRefused(t *testing.T) {
	_, err := shardConfigs(context.Background(), []string{"postgres://a/x", "postgres://b/x"}, []string{"postgres://c/x"}, "", "")
	if err == nil || !strings.Contains(err.Error(), "2 primaries but 1 replicas") {
		t.Fatalf("err = %v", err)
	}
}

func TestInitialRangesCoverEveryID(t *testing.T) {
	rr, err := shard.NewRangeRouter(initialRanges(3000, 3))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]int{-5: 0, 0: 0, 999: 0, 1000: 1, 1999: 1, 2000: 2, 1 << 40: 2} {
		if got, err := rr.Route(id); err != nil || got != want {
			t.Errorf("Route(%d) = %d, %v; want %d", id, got, err, want)
		}
	}
}

func TestRangePredicate(t *testing.T) {
	where, args := rangePredicate([]shard.Range[int64, int]{{NoStart: true, End: 10}, {Start: 20, End: 30}, {Start: 40, NoEnd: true}})
	if want := "((id < $1) OR (id >= $2 AND id < $3) OR (id >= $4))"; where != want {
		t.Errorf("where = %s, want %s", where, want)
	}
	if len(args) != 4 || args[0] != int64(10) || args[3] != int64(40) {
		t.Errorf("args = %v", args)
	}
}

// The fence waits for writes in flight on its range (and only those), refuses or holds new ones,
// and lets everything through once lifted.
func TestGateFence(t *testing.T) {
	var g gate
	g.init()
	ctx := context.Background()
	inside, err := g.enter(ctx, 15, 0)
	if err != nil {
		t.Fatal(err)
	}
	outside, err := g.enter(ctx, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	var raised atomic.Bool
	fc := make(chan *fence)
	go func() {
		f := g.raise(10, 20, false)
		raised.Store(true)
		fc <- f
	}()
	time.Sleep(50 * time.Millisecond)
	if raised.Load() {
		t.Fatal("the fence was up while a write on its range was in flight")
	}
	inside()
	f := <-fc
	outside() // a write outside the range never held the fence back

	if _, err := g.enter(ctx, 12, 0); !errors.Is(err, ErrRangeMoving) {
		t.Errorf("write into the fence with no wait: %v, want ErrRangeMoving", err)
	}
	if _, err := g.enter(ctx, 12, 20*time.Millisecond); !errors.Is(err, ErrRangeMoving) {
		t.Errorf("write into the fence after its wait: %v, want ErrRangeMoving", err)
	}
	if rel, err := g.enter(ctx, 20, 0); err != nil {
		t.Errorf("write just past the fence: %v", err)
	} else {
		rel()
	}
	held := make(chan error, 1)
	go func() {
		rel, err := g.enter(ctx, 12, 5*time.Second)
		if err == nil {
			rel()
		}
		held <- err
	}()
	time.Sleep(20 * time.Millisecond)
	g.lift(f)
	if err := <-held; err != nil {
		t.Errorf("write held by the fence, after the lift: %v", err)
	}
	if len(g.inflight) != 0 {
		t.Errorf("in flight after every write ended: %v", g.inflight)
	}
}
