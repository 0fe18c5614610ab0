package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/girder-go/girder/replica"
)

func init() {
	register(chapter{
		name:  "replica",
		title: "writes go to the primary, reads to a fit replica, and a read that follows a write sees it",
		run:   tourReplica,
	})
}

// tourReplica routes queries over three in-process stand-ins for PostgreSQL servers. The router
// is the real one: only the pools and the probe (Options.Probe, which asks a server for its role
// and log position) are fakes, so the decisions printed are the ones it makes against real
// servers.
func tourReplica(ctx context.Context, w io.Writer) error {
	if tourReplicaDSNs.primary != "" {
		return tourReplicaReal(ctx, w)
	}
	primary := &tourReplicaServer{name: "primary"}
	r0 := &tourReplicaServer{name: "replica-0", replica: true}
	r1 := &tourReplicaServer{name: "replica-1", replica: true}
	var last replica.RouteInfo
	r, err := replica.New(replica.Options{
		Primary:       replica.Node{Name: "primary", DB: primary},
		Replicas:      []replica.Node{{Name: "replica-0", DB: r0}, {Name: "replica-1", DB: r1}},
		CheckInterval: 10 * time.Millisecond,
		MaxLagBytes:   1 << 20,
		Probe:         tourReplicaProbe,
		Hooks:         replica.Hooks{OnRoute: func(_ context.Context, rt replica.RouteInfo) { last = rt }},
	})
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Ready(ctx); err != nil {
		return err
	}
	read := func(label string, ctx context.Context) error {
		var who string
		if err := r.ReadQueryRow(ctx, "SELECT … FROM users").Scan(&who); err != nil {
			fmt.Fprintf(w, "  %-44s error: %v\n", label, err)
			return err
		}
		fmt.Fprintf(w, "  %-44s → %-9s (%s)\n", label, who, last.Reason)
		return nil
	}
	reads := func(label string, n int) error {
		var names []string
		for range n {
			var who string
			if err := r.ReadQueryRow(ctx, "SELECT … FROM users").Scan(&who); err != nil {
				return err
			}
			names = append(names, who)
		}
		fmt.Fprintf(w, "  %-44s → %s (%s)\n", label, strings.Join(names, ", "), last.Reason)
		return nil
	}
	settle := func(ok func(st []replica.NodeStatus) bool) error { return tourReplicaSettle(ctx, r, ok) }

	fmt.Fprintln(w, "Three servers; checks every 10 ms ask each for pg_is_in_recovery() and its log position.")
	if _, err := r.Exec(ctx, "INSERT INTO users …"); err != nil {
		return err
	}
	fmt.Fprintf(w, "  %-44s → %-9s (%s)\n", "a write", last.Node, last.Reason)
	r0.lsn.Store(primary.lsn.Load()) // both replicas replay it
	r1.lsn.Store(primary.lsn.Load())
	if err := reads("four reads, round robin", 4); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nreplica-1 falls 5 MB behind; MaxLagBytes is 1 MB:")
	primary.lsn.Add(5 << 20)
	r0.lsn.Store(primary.lsn.Load())
	if err := settle(func(st []replica.NodeStatus) bool { return !st[2].Fit }); err != nil {
		return err
	}
	if err := reads("four reads", 4); err != nil {
		return err
	}
	r1.lsn.Store(primary.lsn.Load())

	fmt.Fprintln(w, "\nRead-your-writes: a write returns a token (its WAL position); reads carry it in ctx.")
	_, tok, err := r.ExecToken(ctx, "UPDATE users SET name = 'Ada' WHERE id = 7")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  token %s (a string: put it in a cookie or header)\n", tok)
	if err := read("read with the token, no replica has it", replica.WithToken(ctx, tok)); err != nil {
		return err
	}
	time.AfterFunc(20*time.Millisecond, func() { r1.lsn.Store(tok.LSN()) }) // replica-1 replays it soon
	wait := replica.TokenPolicy{Wait: 200 * time.Millisecond, PollEvery: 5 * time.Millisecond}
	start := time.Now()
	if err := read("same, policy: wait up to 200 ms", replica.WithTokenPolicy(ctx, tok, wait)); err != nil {
		return err
	}
	fmt.Fprintf(w, "  %-44s   (waited about %d ms)\n", "", time.Since(start).Round(10*time.Millisecond).Milliseconds())
	if err := read("read without a token (may be stale)", ctx); err != nil {
		return err
	}
	r0.lsn.Store(tok.LSN())

	fmt.Fprintln(w, "\nFailures:")
	r0.down.Store(true)
	if err := settle(func(st []replica.NodeStatus) bool { return !st[1].Up }); err != nil {
		return err
	}
	if err := reads("replica-0 down: four reads", 4); err != nil {
		return err
	}
	r1.down.Store(true)
	if err := settle(func(st []replica.NodeStatus) bool { return !st[2].Up }); err != nil {
		return err
	}
	if err := reads("both replicas down", 2); err != nil {
		return err
	}
	r0.down.Store(false)
	r1.down.Store(false)
	primary.down.Store(true)
	if err := settle(func(st []replica.NodeStatus) bool { return !st[0].Up && st[1].Fit && st[2].Fit }); err != nil {
		return err
	}
	_, err = r.Exec(ctx, "INSERT …")
	fmt.Fprintf(w, "  %-44s → %v\n", "primary down: a write", err)
	if !errors.Is(err, replica.ErrNoPrimary) {
		return fmt.Errorf("want ErrNoPrimary, got %v", err)
	}
	if err := reads("reads go on", 2); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nFailover: replica-0 is promoted; the old primary comes back as a replica:")
	r0.flip()      // promoted
	primary.flip() // demoted
	primary.down.Store(false)
	if err := settle(func(st []replica.NodeStatus) bool { return st[1].Role == replica.RolePrimary && st[0].Fit }); err != nil {
		return err
	}
	if _, err := r.Exec(ctx, "INSERT …"); err != nil {
		return err
	}
	fmt.Fprintf(w, "  %-44s → %-9s (%s)\n", "a write", last.Node, last.Reason)
	if err := reads("four reads", 4); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nRouting takes no lock and allocates nothing: the checks swap in a new routing table.")
	return nil
}

// tourReplicaSettle waits until the router's checks see what ok wants.
func tourReplicaSettle(ctx context.Context, r *replica.Router, ok func([]replica.NodeStatus) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for !ok(r.Status()) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the checks did not see the change: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// tourReplicaServer stands in for a pool to one PostgreSQL server: every query answers with the
// server's name, a write moves its log position forward.
type tourReplicaServer struct {
	name    string
	replica bool        // the role it starts in
	flipped atomic.Bool // promoted or demoted since
	lsn     atomic.Uint64
	down    atomic.Bool
}

func (s *tourReplicaServer) inRecovery() bool { return s.replica != s.flipped.Load() }
func (s *tourReplicaServer) flip()            { s.flipped.Store(true) }

func tourReplicaProbe(_ context.Context, db replica.DB) (replica.Probe, error) {
	s := db.(*tourReplicaServer)
	if s.down.Load() {
		return replica.Probe{}, errors.New("connection refused")
	}
	return replica.Probe{InRecovery: s.inRecovery(), LSN: s.lsn.Load()}, nil
}

func (s *tourReplicaServer) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	if s.inRecovery() {
		return pgconn.CommandTag{}, errors.New("cannot execute INSERT in a read-only transaction")
	}
	s.lsn.Add(200)
	return pgconn.NewCommandTag("INSERT 0 1"), nil
}

func (s *tourReplicaServer) QueryRow(context.Context, string, ...any) pgx.Row {
	return tourReplicaRow(s.name)
}

func (s *tourReplicaServer) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("tour: not used")
}

func (s *tourReplicaServer) Begin(context.Context) (pgx.Tx, error) {
	return nil, errors.New("tour: not used")
}

func (s *tourReplicaServer) BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error) {
	return nil, errors.New("tour: not used")
}

type tourReplicaRow string

func (r tourReplicaRow) Scan(dest ...any) error {
	p, ok := dest[0].(*string)
	if !ok {
		return errors.New("tour: scan into one *string")
	}
	*p = string(r)
	return nil
}
