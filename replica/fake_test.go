package replica

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// fakeDB is a node without a database: its probe answers come from fields the test sets, and its
// query methods count calls and answer with the node's name.
type fakeDB struct {
	name string

	mu    sync.Mutex
	probe Probe
	err   error         // returned by probes when non-nil
	hang  bool          // probes block until their context ends
	block chan struct{} // when non-nil, probes wait for it to be closed

	reads, writes, probes atomic.Int64
}

var errFakeReadOnly = errors.New("fake: cannot execute in a read-only transaction")

func newPrimary(name string) *fakeDB { return &fakeDB{name: name, probe: Probe{LSN: 1000}} }

func newReplica(name string, lsn uint64) *fakeDB {
	return &fakeDB{name: name, probe: Probe{InRecovery: true, LSN: lsn}}
}

func (f *fakeDB) set(p Probe, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probe, f.err = p, err
}

func (f *fakeDB) setLSN(lsn uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probe.LSN = lsn
}

func (f *fakeDB) state() (Probe, bool, chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probe, f.hang, f.block, f.err
}

// fakeProbe is the ProbeFunc for fakeDB nodes.
func fakeProbe(ctx context.Context, db DB) (Probe, error) {
	f := db.(*fakeDB)
	f.probes.Add(1)
	p, hang, block, err := f.state()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return Probe{}, ctx.Err()
		}
	}
	if hang {
		<-ctx.Done()
		return Probe{}, ctx.Err()
	}
	return p, err
}

func (f *fakeDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	f.writes.Add(1)
	if p, _, _, _ := f.state(); p.InRecovery {
		return pgconn.CommandTag{}, errFakeReadOnly
	}
	return pgconn.NewCommandTag("INSERT 0 1"), nil
}

func (f *fakeDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	f.reads.Add(1)
	return &fakeRows{name: f.name}, nil
}

func (f *fakeDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	f.reads.Add(1)
	return fakeRow{name: f.name}
}

func (f *fakeDB) Begin(ctx context.Context) (pgx.Tx, error) {
	return f.BeginTx(ctx, pgx.TxOptions{})
}

func (f *fakeDB) BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error) {
	f.writes.Add(1)
	return nil, errors.New("fake: no transactions")
}

// fakeRow scans the node's name into a *string.
type fakeRow struct{ name string }

func (r fakeRow) Scan(dest ...any) error {
	if len(dest) != 1 {
		return errors.New("fake: scan one *string")
	}
	p, ok := dest[0].(*string)
	if !ok {
		return errors.New("fake: scan one *string")
	}
	*p = r.name
	return nil
}

// fakeRows is one row holding the node's name. The embedded interface stands in for the methods
// the tests never call.
type fakeRows struct {
	pgx.Rows
	name string
	done bool
}

func (r *fakeRows) Close()                 {}
func (r *fakeRows) Err() error             { return nil }
func (r *fakeRows) Values() ([]any, error) { return []any{r.name}, nil }
func (r *fakeRows) Scan(dest ...any) error { return fakeRow{name: r.name}.Scan(dest...) }

func (r *fakeRows) Next() bool {
	if r.done {
		return false
	}
	r.done = true
	return true
}

// nameOf returns the fake's name behind a DB.
func nameOf(db DB) string { return db.(*fakeDB).name }

// fakeCluster is one primary and n replicas, all caught up at LSN 1000.
func fakeCluster(n int) (*fakeDB, []*fakeDB, Options) {
	p := newPrimary("primary")
	opts := Options{Primary: Node{Name: "primary", DB: p}, Probe: fakeProbe}
	var rs []*fakeDB
	for i := range n {
		r := newReplica("replica-"+string(rune('0'+i)), 1000)
		rs = append(rs, r)
		opts.Replicas = append(opts.Replicas, Node{Name: r.name, DB: r})
	}
	return p, rs, opts
}
