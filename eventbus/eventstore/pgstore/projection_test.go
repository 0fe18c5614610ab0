package pgstore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	childDSNEnv    = "GIRDER_PGSTORE_OUTBOX_CHILD_DSN"
	childSchemaEnv = "GIRDER_PGSTORE_OUTBOX_CHILD_SCHEMA"
)

// TestMain runs the outbox crash test's child process when this binary is re-executed as one.
func TestMain(m *testing.M) {
	if dsn := os.Getenv(childDSNEnv); dsn != "" {
		if err := outboxChild(dsn, os.Getenv(childSchemaEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type amount struct {
	Amount int `json:"amount"`
}

func amountEvents(from, n int) []eventstore.Event {
	evs := make([]eventstore.Event, n)
	for i := range evs {
		evs[i] = eventstore.Event{Type: "amount", Data: fmt.Appendf(nil, `{"amount":%d}`, from+i)}
	}
	return evs
}

// exactlyOnce applies events to a non-idempotent read model (a running sum) through a
// TxProjection that fails and is cancelled at points along the way; the sums are exact, and a
// rebuild from 0 gives the same table.
func exactlyOnce(t *testing.T, s *Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE `+s.schema+`.totals (stream text PRIMARY KEY, sum bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i := range 30 {
		st := fmt.Sprintf("acct-%d", i%4)
		if _, err := s.Append(ctx, st, eventstore.Any, amountEvents(i, 1)...); err != nil {
			t.Fatal(err)
		}
		want[st] += int64(i)
	}
	failAt := map[int64]bool{7: true, 19: true}
	handle := func(ctx context.Context, tx pgx.Tx, e eventstore.RecordedEvent) error {
		var a amount
		if err := json.Unmarshal(e.Data, &a); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.schema+`.totals AS t VALUES ($1, $2)
ON CONFLICT (stream) DO UPDATE SET sum = t.sum + excluded.sum`, e.Stream, a.Amount); err != nil {
			return err
		}
		if failAt[e.Position] {
			delete(failAt, e.Position)
			return errors.New("crash after writing the read model, before commit")
		}
		return nil
	}
	// The hooks see every event's transaction: the two that failed, and each position committed
	// exactly once per pass.
	var mu sync.Mutex
	failed, committed := 0, map[int64]int{}
	hooks := eventstore.Hooks{
		OnProject: func(_ context.Context, i eventstore.ProjectInfo) {
			if i.Err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		},
		OnCheckpoint: func(_ context.Context, i eventstore.CheckpointInfo) {
			if i.Err == nil {
				mu.Lock()
				committed[i.Next-1]++
				mu.Unlock()
			}
		},
	}
	p := TxProjection{Name: "totals", Store: s, Handle: handle, Hooks: hooks}
	for range 2 {
		var he *eventstore.HandlerError
		if err := p.Run(ctx); !errors.As(err, &he) {
			t.Fatalf("Run = %v, want the injected failure", err)
		}
	}
	runTo(t, ctx, s, "totals", p.Run, 31)
	read := func() map[string]int64 {
		got := map[string]int64{}
		rows, _ := s.pool.Query(ctx, `SELECT stream, sum FROM `+s.schema+`.totals`)
		for rows.Next() {
			var st string
			var v int64
			_ = rows.Scan(&st, &v)
			got[st] = v
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read model %v, want %v", got, want)
	}
	mu.Lock()
	if failed != 2 || len(committed) != 30 {
		t.Errorf("hooks saw %d failures and %d positions committed, want 2 and 30", failed, len(committed))
	}
	for pos, n := range committed {
		if n != 1 {
			t.Errorf("OnCheckpoint saw position %d committed %d times", pos, n)
		}
	}
	mu.Unlock()
	if err := p.Rebuild(ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `TRUNCATE `+s.schema+`.totals`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	runTo(t, ctx, s, "totals", p.Run, 31)
	if got := read(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rebuilt read model %v, want %v", got, want)
	}
}

// runTo runs run until the checkpoint name reaches next, then stops it.
func runTo(t *testing.T, ctx context.Context, s *Store, name string, run func(context.Context) error, next int64) {
	t.Helper()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(rctx) }()
	for {
		cur, err := s.LoadCheckpoint(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if cur >= next {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run ended at checkpoint %d: %v", cur, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v", err)
	}
}

// sinkPublisher publishes into a table, recording the stored event's stream and version.
type sinkPublisher struct {
	s     *Store
	block int // publish number (1-based) at which to announce and block forever; 0: never
	n     int
}

func (p *sinkPublisher) Publish(ctx context.Context, _ amount) error {
	p.n++
	if p.n == p.block {
		fmt.Println("blocked")
		select {}
	}
	re, _ := eventstore.Recorded(ctx)
	_, err := p.s.pool.Exec(ctx, `INSERT INTO `+p.s.schema+`.sink (stream, version, run) VALUES ($1, $2, $3)`,
		re.Stream, re.Version, map[bool]string{true: "child", false: "restart"}[p.block > 0])
	return err
}

// outboxChild appends six events to two streams in one transaction, prints "committed",
// publishes the first one through the outbox and blocks in the second publish, where the
// parent kills it.
func outboxChild(dsn, schema string) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	s, err := New(pool, Options{Schema: schema})
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := s.AppendTx(ctx, tx, "order-1", eventstore.NoStream, amountEvents(1, 3)...); err != nil {
			return err
		}
		_, err := s.AppendTx(ctx, tx, "order-2", eventstore.NoStream, amountEvents(10, 3)...)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Println("committed")
	ob := eventstore.Outbox[amount]{Name: "outbox", Store: s, Checkpoints: s, Publisher: &sinkPublisher{s: s, block: 2}}
	return ob.Run(ctx)
}

// outboxSurvivesKill: a child process commits events, publishes one and is SIGKILLed before
// the rest; the restarted outbox publishes every event, in order per stream.
func outboxSurvivesKill(t *testing.T, s *Store, dsn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE `+s.schema+`.sink (id bigint GENERATED ALWAYS AS IDENTITY, stream text, version bigint, run text)`); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDSNEnv+"="+dsn, childSchemaEnv+"="+s.schema)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "blocked" {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if strings.Join(lines, ",") != "committed,blocked" {
		t.Fatalf("child printed %q, want committed then blocked", lines)
	}

	ob := eventstore.Outbox[amount]{Name: "outbox", Store: s, Checkpoints: s, Publisher: &sinkPublisher{s: s}}
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil || len(all) != 6 {
		t.Fatalf("store holds %d events (%v), want the child's 6", len(all), err)
	}
	runTo(t, ctx, s, "outbox", ob.Run, all[5].Position+1)

	rows, err := s.pool.Query(ctx, `SELECT stream, version, run FROM `+s.schema+`.sink ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type pub struct {
		Stream  string
		Version int64
		Run     string
	}
	pubs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[pub])
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	last := map[string]int64{}
	for _, p := range pubs {
		seen[fmt.Sprintf("%s/%d", p.Stream, p.Version)] = true
		if p.Run == "restart" {
			if p.Version <= last[p.Stream] {
				t.Fatalf("restart published %s v%d after v%d: out of order", p.Stream, p.Version, last[p.Stream])
			}
			last[p.Stream] = p.Version
		}
	}
	if len(seen) != 6 || pubs[0].Run != "child" {
		t.Fatalf("published %v: want all 6 events, the first by the child", pubs)
	}
}
