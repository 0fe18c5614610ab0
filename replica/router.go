package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Router sends writes to the primary and reads to a fit replica. It is safe for concurrent use.
// New starts a goroutine that checks every node each CheckInterval; Close stops it.
type Router struct {
	opts  Options
	nodes []*node // the primary first, then the replicas, in configuration order
	view  atomic.Pointer[view]

	closed    atomic.Bool
	cancel    context.CancelFunc // ends the checks' context
	done      chan struct{}      // closed when the checking goroutine has returned
	ready     chan struct{}      // closed when the first round of checks is in the view
	closeOnce sync.Once
	owned     []*pgxpool.Pool // pools made by Open, closed by Close
}

// New returns a Router over the nodes of opts and starts checking them at once. Until the first
// round of checks has finished (see Ready), writes go to the configured primary and reads go to it
// too, since no replica's lag is known yet.
func New(opts Options) (*Router, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	r := &Router{opts: opts, done: make(chan struct{}), ready: make(chan struct{})}
	for _, n := range opts.nodes() {
		r.nodes = append(r.nodes, &node{name: n.Name, db: n.DB})
	}
	r.view.Store(initialView(r.nodes))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
	return r, nil
}

// Open makes a pgxpool.Pool for each connection string and returns a Router over them that
// closes the pools when it is closed. The pools connect lazily, so Open does not wait for the
// servers; call Ready for that. opts.Primary and opts.Replicas must be empty.
func Open(ctx context.Context, primaryDSN string, replicaDSNs []string, opts Options) (*Router, error) {
	if opts.Primary.DB != nil || len(opts.Replicas) > 0 {
		return nil, errors.New("replica: Open makes the nodes itself: leave Options.Primary and Options.Replicas empty")
	}
	var pools []*pgxpool.Pool
	closeAll := func() {
		for _, p := range pools {
			p.Close()
		}
	}
	for i, dsn := range append([]string{primaryDSN}, replicaDSNs...) {
		p, err := pgxpool.New(ctx, dsn)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("replica: pool for node %d: %w", i, err)
		}
		pools = append(pools, p)
	}
	opts.Primary.DB = pools[0]
	for _, p := range pools[1:] {
		opts.Replicas = append(opts.Replicas, Node{DB: p})
	}
	r, err := New(opts)
	if err != nil {
		closeAll()
		return nil, err
	}
	r.owned = pools
	return r, nil
}

func (r *Router) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.opts.CheckInterval)
	defer t.Stop()
	first := true
	for {
		if res := r.checkRound(ctx); res != nil {
			prev := r.view.Load()
			next := r.buildView(prev, res)
			r.view.Store(next)
			r.reportChanges(prev, next)
		}
		if first {
			close(r.ready)
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the checks and waits for them to end; it cannot fail, and a check in flight is
// canceled, so it does not wait longer than a canceled query. Calls after Close fail with
// ErrClosed. The pools passed in Options stay open (they are the caller's); those made by Open
// are closed. Close is idempotent.
func (r *Router) Close() {
	if r == nil {
		return
	}
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.cancel()
		<-r.done
		for _, p := range r.owned {
			p.Close()
		}
	})
}

// Ready waits until the first round of checks has finished, so that roles and lags are known.
func (r *Router) Ready(ctx context.Context) error {
	if r == nil || r.closed.Load() {
		return ErrClosed
	}
	select {
	case <-r.ready:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

// Status returns every node as the last round of checks saw it, the primary first.
func (r *Router) Status() []NodeStatus {
	if r == nil {
		return nil
	}
	return slices.Clone(r.view.Load().status)
}

// Writer returns the primary, for writes and transactions, or a *NoPrimaryError that says for
// each node why it is not one.
func (r *Router) Writer(ctx context.Context) (DB, error) {
	n, err := r.writer(ctx)
	if err != nil {
		return nil, err
	}
	return n.db, nil
}

func (r *Router) writer(ctx context.Context) (*node, error) {
	if r == nil || r.closed.Load() {
		return nil, ErrClosed
	}
	v := r.view.Load()
	if v.primary == nil {
		return nil, v.noPrimary
	}
	r.routed(ctx, v.primary, ReasonWrite)
	return v.primary, nil
}

// Reader returns the node a read made with ctx should go to.
//
// Without a token in ctx (see WithToken) the read may be stale: it goes to a fit replica chosen by
// the Picker, or to the primary when none is fit (unless Options.NoFallback). With a token it must
// see the write the token was taken after: it goes to a fit replica that has replayed the token,
// and otherwise follows the TokenPolicy: wait for one, then read from the primary or fail with
// ErrStale.
func (r *Router) Reader(ctx context.Context) (DB, error) {
	if r == nil || r.closed.Load() {
		return nil, ErrClosed
	}
	v := r.view.Load()
	tv := tokenFrom(ctx)
	if tv == nil || tv.tok.IsZero() {
		if len(v.fit) > 0 {
			n := v.fit[pick(r.opts.Picker, v.cands)]
			r.routed(ctx, n, ReasonReplica)
			return n.db, nil
		}
		if r.opts.NoFallback {
			return nil, v.noReplica
		}
		return r.toPrimary(ctx, v, ReasonFallback)
	}
	return r.readToken(ctx, v, tv)
}

// readToken routes a read that must see the log up to tv.tok.
func (r *Router) readToken(ctx context.Context, v *view, tv *tokenValue) (DB, error) {
	tok := tv.tok.lsn
	// fit is sorted by the checked replay position, so the replicas known to be far enough are a
	// prefix: the picker chooses among them.
	k := 0
	for k < len(v.lsns) && v.lsns[k] >= tok {
		k++
	}
	if k > 0 {
		n := v.fit[pick(r.opts.Picker, v.cands[:k])]
		r.routed(ctx, n, ReasonTokenReplica)
		return n.db, nil
	}
	// Reads that waited since the check may have seen a replica move on.
	for _, n := range v.fit {
		if n.replayed.Load() >= tok {
			r.routed(ctx, n, ReasonTokenReplica)
			return n.db, nil
		}
	}
	policy := r.opts.TokenPolicy
	if tv.hasPolicy {
		policy = tv.policy
	}
	if policy.Wait > 0 && len(v.fit) > 0 {
		n, err := r.waitFor(ctx, tok, policy)
		if err != nil {
			return nil, err
		}
		if n != nil {
			r.routed(ctx, n, ReasonTokenWaited)
			return n.db, nil
		}
	}
	if policy.NoFallback {
		return nil, fmt.Errorf("%w: token %s", ErrStale, tv.tok)
	}
	return r.toPrimary(ctx, r.view.Load(), ReasonTokenFallback)
}

// waitFor asks the fit replicas for their replay position every policy.pollEvery() until one has
// replayed tok (returned) or policy.Wait has passed (nil, nil). Only the end of ctx or of the
// router is an error. Concurrent waits share their questions: a node asked by another wait less
// than one step ago is not asked again, its answer is in n.replayed.
func (r *Router) waitFor(ctx context.Context, tok uint64, policy TokenPolicy) (*node, error) {
	wctx, cancel := context.WithTimeout(ctx, policy.Wait)
	defer cancel()
	every := policy.pollEvery()
	for {
		for _, n := range r.view.Load().fit {
			if n.replayed.Load() >= tok {
				return n, nil
			}
			if !n.claimPoll(every) {
				continue
			}
			pctx, pcancel := context.WithTimeout(wctx, r.opts.CheckTimeout)
			p, err := r.probe(pctx, n.db)
			pcancel()
			if err == nil && p.InRecovery {
				n.noteReplayed(p.LSN)
				if p.LSN >= tok {
					return n, nil
				}
			}
			if wctx.Err() != nil {
				break
			}
		}
		if err := ctxErr(ctx); err != nil {
			return nil, err
		}
		t := time.NewTimer(every)
		select {
		case <-wctx.Done():
			t.Stop()
			if err := ctxErr(ctx); err != nil {
				return nil, err
			}
			return nil, nil
		case <-r.done:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
	}
}

func (r *Router) toPrimary(ctx context.Context, v *view, reason Reason) (DB, error) {
	if v.primary == nil {
		return nil, v.noPrimary
	}
	r.routed(ctx, v.primary, reason)
	return v.primary.db, nil
}

func (r *Router) routed(ctx context.Context, n *node, reason Reason) {
	if h := r.opts.Hooks.OnRoute; h != nil {
		h(ctx, RouteInfo{Node: n.name, Reason: reason})
	}
}

// Token returns the primary's current log insert position. Taken after a write has returned
// (committed), it is a Token that reads can carry to see that write.
func (r *Router) Token(ctx context.Context) (Token, error) {
	n, err := r.writer(ctx)
	if err != nil {
		return Token{}, err
	}
	return r.tokenOf(ctx, n)
}

func (r *Router) tokenOf(ctx context.Context, n *node) (Token, error) {
	p, err := r.probe(ctx, n.db)
	if err != nil {
		return Token{}, fmt.Errorf("replica: token from %s: %w", n.name, err)
	}
	if p.InRecovery {
		return Token{}, &NoPrimaryError{Nodes: []NodeError{{Node: n.name, Err: ErrInRecovery}}}
	}
	return Token{lsn: p.LSN}, nil
}

// Exec runs sql on the primary.
func (r *Router) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	db, err := r.Writer(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return db.Exec(ctx, sql, args...)
}

// ExecToken runs sql on the primary, outside any transaction, and returns a Token that reads can
// carry (WithToken) to see its effect. It costs a second round trip to the primary.
func (r *Router) ExecToken(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, Token, error) {
	n, err := r.writer(ctx)
	if err != nil {
		return pgconn.CommandTag{}, Token{}, err
	}
	tag, err := n.db.Exec(ctx, sql, args...)
	if err != nil {
		return tag, Token{}, err
	}
	tok, err := r.tokenOf(ctx, n)
	return tag, tok, err
}

// WriteQuery runs sql on the primary: use it for queries that write (INSERT … RETURNING), or
// that must not be stale whatever the token. Reads that may go to a replica use ReadQuery. The
// Router has no plain Query on purpose, so that it does not satisfy DB (or any pgx-shaped
// interface) and silently send the reads of code written against one to the primary.
func (r *Router) WriteQuery(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	db, err := r.Writer(ctx)
	if err != nil {
		return nil, err
	}
	return db.Query(ctx, sql, args...)
}

// WriteQueryRow is WriteQuery for one row; a routing error comes back from Scan.
func (r *Router) WriteQueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	db, err := r.Writer(ctx)
	if err != nil {
		return errRow{err}
	}
	return db.QueryRow(ctx, sql, args...)
}

// Begin starts a transaction on the primary. Call Token after Commit to read its effects.
func (r *Router) Begin(ctx context.Context) (pgx.Tx, error) {
	db, err := r.Writer(ctx)
	if err != nil {
		return nil, err
	}
	return db.Begin(ctx)
}

// BeginTx is Begin with options.
func (r *Router) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	db, err := r.Writer(ctx)
	if err != nil {
		return nil, err
	}
	return db.BeginTx(ctx, opts)
}

// ReadQuery runs a read-only sql on the node Reader chooses for ctx.
func (r *Router) ReadQuery(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	db, err := r.Reader(ctx)
	if err != nil {
		return nil, err
	}
	return db.Query(ctx, sql, args...)
}

// ReadQueryRow is ReadQuery for one row; a routing error comes back from Scan.
func (r *Router) ReadQueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	db, err := r.Reader(ctx)
	if err != nil {
		return errRow{err}
	}
	return db.QueryRow(ctx, sql, args...)
}
