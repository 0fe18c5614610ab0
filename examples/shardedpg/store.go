package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/shard"
)

// Account is one row of the sharded table.
type Account struct {
	ID      int64
	Owner   string
	Balance int64
}

// ErrNotFound is returned for an account no shard has.
var ErrNotFound = errors.New("shardedpg: account not found")

// ErrRangeMoving is returned for a write to a range that is being moved when the fence did not
// lift within Store.FenceWait. The write was not applied: the caller may retry it.
var ErrRangeMoving = errors.New("shardedpg: range is moving to another shard; write not applied")

// ShardError is the failure of an operation on one shard: Shard names it, so a caller (and a
// log line) says which shard is down, and which keys it holds.
type ShardError struct {
	Shard string
	Key   int64 // the key of a single-key operation; -1 for a list
	Err   error
}

func (e *ShardError) Error() string {
	if e.Key < 0 {
		return fmt.Sprintf("shardedpg: %s: %v", e.Shard, e.Err)
	}
	return fmt.Sprintf("shardedpg: %s (key %d): %v", e.Shard, e.Key, e.Err)
}

func (e *ShardError) Unwrap() error { return e.Err }

// ShardConfig is one shard: the pool configuration of its primary and of its replicas.
type ShardConfig struct {
	Name     string
	Primary  *pgxpool.Config
	Replicas []*pgxpool.Config
	// RouterHooks are called after the hooks of the router options given to OpenStore, for
	// this shard's router only (the metrics of -metrics, labelled with the shard's name).
	RouterHooks replica.Hooks
}

// shardName is the name of shard id: its configured Name, else "shard-<id>".
func shardName(id int, sc ShardConfig) string {
	if sc.Name != "" {
		return sc.Name
	}
	return fmt.Sprintf("shard-%d", id)
}

// Shard is one shard of the table: a primary with its replicas behind a replica.Router, which
// sends writes to the primary and reads to a replica that has replayed the caller's token.
type Shard struct {
	ID     int
	Name   string
	Router *replica.Router
	pools  []*pgxpool.Pool
}

// Store is the accounts table sharded by id ranges over shards. The RangeRouter picks the shard;
// each shard's replica.Router picks the server.
type Store struct {
	shards []*Shard // by ID; a shard may hold no range yet (the target of a split)
	ranges *shard.RangeRouter[int64, int]
	gate   gate

	// FenceWait is how long a write to a range being moved waits for the move to finish before
	// it fails with ErrRangeMoving. Zero fails such writes at once.
	FenceWait time.Duration
	// OpTimeout bounds each single-key operation and each shard's part of a list.
	OpTimeout time.Duration
	// ReadWait is how long a read carrying a token waits for a replica to replay it before it
	// goes to the primary.
	ReadWait time.Duration
}

// OpenStore opens every shard and routes ids with ranges (whose values are shard IDs, indexes into
// shards). Shards without a range stand by for splits.
func OpenStore(ctx context.Context, shards []ShardConfig, ranges []shard.Range[int64, int], ropts replica.Options) (*Store, error) {
	return openStore(ctx, shards, ranges, ropts, true)
}

// openStore is OpenStore that, without waitPrimaries, returns once every shard's first checks are
// done, whether it has a primary or not.
func openStore(ctx context.Context, shards []ShardConfig, ranges []shard.Range[int64, int], ropts replica.Options, waitPrimaries bool) (*Store, error) {
	rr, err := shard.NewRangeRouter(ranges)
	if err != nil {
		return nil, fmt.Errorf("shardedpg: %w", err)
	}
	for _, r := range ranges {
		if r.Shard < 0 || r.Shard >= len(shards) {
			return nil, fmt.Errorf("shardedpg: a range names shard %d of %d", r.Shard, len(shards))
		}
	}
	s := &Store{ranges: rr, FenceWait: 2 * time.Second, OpTimeout: 5 * time.Second, ReadWait: time.Second}
	s.gate.init()
	for i, sc := range shards {
		sh, err := openShard(ctx, i, sc, ropts)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.shards = append(s.shards, sh)
	}
	// Wait for every shard's primary: on a loaded machine the first round of checks can time out.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, sh := range s.shards {
		if err := sh.Router.Ready(wctx); err != nil {
			s.Close()
			return nil, &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
		for waitPrimaries {
			_, err := sh.Router.Writer(wctx)
			if err == nil {
				break
			}
			if wctx.Err() != nil {
				s.Close()
				return nil, &ShardError{Shard: sh.Name, Key: -1, Err: err}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return s, nil
}

func openShard(ctx context.Context, id int, sc ShardConfig, ropts replica.Options) (*Shard, error) {
	sh := &Shard{ID: id, Name: shardName(id, sc)}
	ropts.Hooks = joinHooks(ropts.Hooks, sc.RouterHooks)
	pool := func(c *pgxpool.Config) (*pgxpool.Pool, error) {
		p, err := pgxpool.NewWithConfig(ctx, c)
		if err != nil {
			sh.close()
			return nil, fmt.Errorf("shardedpg: %s: %w", sh.Name, err)
		}
		sh.pools = append(sh.pools, p)
		return p, nil
	}
	p, err := pool(sc.Primary)
	if err != nil {
		return nil, err
	}
	ropts.Primary = replica.Node{Name: sh.Name + "-primary", DB: p}
	ropts.Replicas = nil
	for i, rc := range sc.Replicas {
		p, err := pool(rc)
		if err != nil {
			return nil, err
		}
		ropts.Replicas = append(ropts.Replicas, replica.Node{Name: fmt.Sprintf("%s-replica-%d", sh.Name, i), DB: p})
	}
	if sh.Router, err = replica.New(ropts); err != nil {
		sh.close()
		return nil, fmt.Errorf("shardedpg: %s: %w", sh.Name, err)
	}
	return sh, nil
}

func (sh *Shard) close() {
	sh.Router.Close()
	for _, p := range sh.pools {
		p.Close()
	}
}

// Close closes every shard's router and pools.
func (s *Store) Close() {
	for _, sh := range s.shards {
		sh.close()
	}
}

// Shards returns every shard, by ID.
func (s *Store) Shards() []*Shard { return s.shards }

// Table returns the current range table.
func (s *Store) Table() *shard.RangeTable[int64, int] { return s.ranges.Table() }

const schema = `
CREATE SEQUENCE IF NOT EXISTS accounts_rev;
CREATE TABLE IF NOT EXISTS accounts (
	id      bigint PRIMARY KEY,
	owner   text   NOT NULL,
	balance bigint NOT NULL DEFAULT 0,
	rev     bigint NOT NULL DEFAULT nextval('accounts_rev')
);
CREATE INDEX IF NOT EXISTS accounts_balance ON accounts (balance DESC, id)`

// Migrate creates the table on every shard's primary.
func (s *Store) Migrate(ctx context.Context) error {
	for _, sh := range s.shards {
		if _, err := sh.Router.Exec(ctx, schema); err != nil {
			return &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
	}
	return nil
}

// Session carries one client's read-your-writes tokens, one per shard: WAL positions of different
// primaries cannot be compared, so a token only ever travels to reads of the shard that issued it.
type Session struct {
	mu     sync.Mutex
	tokens map[int]replica.Token
}

// NewSession returns a session with no writes yet.
func NewSession() *Session { return &Session{tokens: map[int]replica.Token{}} }

func (ss *Session) token(shard int) replica.Token {
	if ss == nil {
		return replica.Token{}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.tokens[shard]
}

func (ss *Session) note(shard int, tok replica.Token) {
	if ss == nil {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.tokens[shard] = ss.tokens[shard].Max(tok)
}

func (s *Store) route(key int64) (*Shard, uint64, error) {
	id, v, err := s.ranges.RouteVersion(key)
	if err != nil {
		return nil, 0, fmt.Errorf("shardedpg: key %d: %w", key, err)
	}
	return s.shards[id], v, nil
}

// write runs one write of key on its shard's primary, behind the gate that fences a moving range,
// and notes the token of the write in the session.
func (s *Store) write(ctx context.Context, ss *Session, key int64, sql string, args ...any) error {
	release, err := s.gate.enter(ctx, key, s.FenceWait)
	if err != nil {
		return err
	}
	defer release()
	// Route only once inside the gate: a split publishes its table before it lifts the fence.
	sh, _, err := s.route(key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.OpTimeout)
	defer cancel()
	tag, tok, err := sh.Router.ExecToken(ctx, sql, args...)
	if err != nil {
		if tag.RowsAffected() > 0 {
			// The write committed; only reading its token failed. Read-your-writes then falls
			// back on the primary for this session, which is still correct.
			return nil
		}
		return &ShardError{Shard: sh.Name, Key: key, Err: err}
	}
	ss.note(sh.ID, tok)
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// Insert adds an account with a zero balance.
func (s *Store) Insert(ctx context.Context, ss *Session, id int64, owner string) error {
	return s.write(ctx, ss, id, "INSERT INTO accounts (id, owner) VALUES ($1, $2)", id, owner)
}

// Add adds delta to an account's balance.
func (s *Store) Add(ctx context.Context, ss *Session, id, delta int64) error {
	return s.write(ctx, ss, id, "UPDATE accounts SET balance = balance + $2, rev = nextval('accounts_rev') WHERE id = $1", id, delta)
}

// Get reads an account from a replica of its shard that has replayed the session's last write
// there (or from the primary when none has within ReadWait).
func (s *Store) Get(ctx context.Context, ss *Session, id int64) (Account, error) {
	for attempt := 0; ; attempt++ {
		sh, v, err := s.route(id)
		if err != nil {
			return Account{}, err
		}
		a, err := s.get(ctx, ss, sh, id)
		// A read routed just before a split switched the range may reach the old shard after
		// the moved rows are cleaned up there: when the table changed meanwhile, route again.
		if errors.Is(err, ErrNotFound) && attempt == 0 && s.ranges.Table().Version() != v {
			continue
		}
		return a, err
	}
}

func (s *Store) get(ctx context.Context, ss *Session, sh *Shard, id int64) (Account, error) {
	ctx, cancel := context.WithTimeout(ctx, s.OpTimeout)
	defer cancel()
	if tok := ss.token(sh.ID); !tok.IsZero() {
		ctx = replica.WithTokenPolicy(ctx, tok, replica.TokenPolicy{Wait: s.ReadWait})
	}
	a := Account{ID: id}
	err := sh.Router.ReadQueryRow(ctx, "SELECT owner, balance FROM accounts WHERE id = $1", id).Scan(&a.Owner, &a.Balance)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, &ShardError{Shard: sh.Name, Key: id, Err: err}
	}
	return a, nil
}

// byBalance orders accounts by balance, highest first, then by id.
func byBalance(a, b Account) int {
	if c := cmp.Compare(b.Balance, a.Balance); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Top returns the limit accounts with the highest balances. It asks every shard of the current
// table for its own top limit — only rows of the ranges the table gives it, so a row that a split
// has copied but not yet cleaned up is counted once — with shard.Scatter, and merges them. With
// partial set, a shard that fails leaves its rows out and its error is returned beside the rest
// (a *ShardError per failed shard, joined); otherwise the first failure fails the list.
//
// A list that ran while a move switched tables may have asked the old shard for rows already
// cleaned up there; it runs again (up to twice) until one table served it from start to end.
func (s *Store) Top(ctx context.Context, limit int, partial bool) ([]Account, error) {
	for attempt := 0; ; attempt++ {
		t := s.ranges.Table()
		top, err := s.top(ctx, t, limit, partial)
		if attempt == 2 || s.ranges.Table().Version() == t.Version() {
			return top, err
		}
	}
}

func (s *Store) top(ctx context.Context, t *shard.RangeTable[int64, int], limit int, partial bool) ([]Account, error) {
	byShard := map[int][]shard.Range[int64, int]{}
	var ids []int
	for _, r := range t.Ranges() {
		if _, ok := byShard[r.Shard]; !ok {
			ids = append(ids, r.Shard)
		}
		byShard[r.Shard] = append(byShard[r.Shard], r)
	}
	opts := shard.ScatterOptions[int]{Policy: shard.FailFast}
	if partial {
		opts.Policy = shard.Collect
	}
	res, err := shard.Scatter(ctx, ids, func(ctx context.Context, id int) ([]Account, error) {
		ctx, cancel := context.WithTimeout(ctx, s.OpTimeout)
		defer cancel()
		sh := s.shards[id]
		where, args := rangePredicate(byShard[id])
		rows, err := sh.Router.ReadQuery(ctx, "SELECT id, owner, balance FROM accounts WHERE "+where+
			fmt.Sprintf(" ORDER BY balance DESC, id LIMIT $%d", len(args)+1), append(args, limit)...)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Account, error) {
			var a Account
			err := row.Scan(&a.ID, &a.Owner, &a.Balance)
			return a, err
		})
	}, opts)
	var all []Account
	for _, r := range res {
		all = append(all, r.Value...)
	}
	slices.SortFunc(all, byBalance)
	if len(all) > limit {
		all = all[:limit]
	}
	return all, s.nameShards(err)
}

// nameShards replaces the shard IDs in Scatter's *shard.ShardError values by *ShardError values
// naming the shards.
func (s *Store) nameShards(err error) error {
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var se *shard.ShardError
		if errors.As(e, &se) {
			if id, ok := se.Shard.(int); ok {
				out = append(out, &ShardError{Shard: s.shards[id].Name, Key: -1, Err: se.Err})
				continue
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// rangePredicate is the SQL condition of ids in rs, with its arguments.
func rangePredicate(rs []shard.Range[int64, int]) (string, []any) {
	var parts []string
	var args []any
	for _, r := range rs {
		var c []string
		if !r.NoStart {
			args = append(args, r.Start)
			c = append(c, fmt.Sprintf("id >= $%d", len(args)))
		}
		if !r.NoEnd {
			args = append(args, r.End)
			c = append(c, fmt.Sprintf("id < $%d", len(args)))
		}
		if len(c) == 0 {
			c = []string{"true"}
		}
		parts = append(parts, "("+strings.Join(c, " AND ")+")")
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}

// gate fences the keys of a range while it moves: writes to them wait (or fail), and the mover
// waits for the writes already in flight on them to finish.
type gate struct {
	mu       sync.Mutex
	drained  *sync.Cond
	inflight map[int64]int
	fence    *fence
}

type fence struct {
	lo, hi int64
	noHi   bool
	lifted chan struct{}
}

func (f *fence) has(k int64) bool { return k >= f.lo && (f.noHi || k < f.hi) }

func (g *gate) init() {
	g.drained = sync.NewCond(&g.mu)
	g.inflight = map[int64]int{}
}

// enter admits a write of key, waiting up to wait for a fence over it to lift. The returned func
// ends the write.
func (g *gate) enter(ctx context.Context, key int64, wait time.Duration) (func(), error) {
	var timer *time.Timer
	g.mu.Lock()
	for g.fence != nil && g.fence.has(key) {
		f := g.fence
		g.mu.Unlock()
		if wait <= 0 {
			return nil, ErrRangeMoving
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-f.lifted:
		case <-timer.C:
			return nil, ErrRangeMoving
		case <-ctx.Done():
			return nil, fmt.Errorf("shardedpg: key %d: %w", key, ctx.Err())
		}
		g.mu.Lock()
	}
	g.inflight[key]++
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		if g.inflight[key]--; g.inflight[key] == 0 {
			delete(g.inflight, key)
		}
		g.drained.Broadcast()
		g.mu.Unlock()
	}, nil
}

// raise fences [lo, hi) (hi unbounded when noHi) and returns once no write admitted before it is
// still running on those keys.
func (g *gate) raise(lo, hi int64, noHi bool) *fence {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := &fence{lo: lo, hi: hi, noHi: noHi, lifted: make(chan struct{})}
	g.fence = f
	for g.busy(f) {
		g.drained.Wait()
	}
	return f
}

func (g *gate) busy(f *fence) bool {
	for k := range g.inflight {
		if f.has(k) {
			return true
		}
	}
	return false
}

// lift removes the fence and wakes the writes waiting on it.
func (g *gate) lift(f *fence) {
	g.mu.Lock()
	if g.fence == f {
		g.fence = nil
	}
	g.mu.Unlock()
	close(f.lifted)
}
