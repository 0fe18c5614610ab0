package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// ownerOf is the owner (tenant) an account id gets.
func ownerOf(id int64) string { return fmt.Sprintf("tenant-%d", id%7) }

// Seed empties the table on every shard and inserts the accounts with even ids below keys, each on
// the primary of its shard, and waits until every replica has replayed that. Odd ids are left for
// the load to insert.
func (s *Store) Seed(ctx context.Context, keys int64) (int, error) {
	for _, sh := range s.shards {
		if _, err := sh.Router.Exec(ctx, "TRUNCATE accounts"); err != nil {
			return 0, &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
	}
	groups := map[int][]int64{}
	for id := int64(0); id < keys; id += 2 {
		sh, _, err := s.route(id)
		if err != nil {
			return 0, err
		}
		groups[sh.ID] = append(groups[sh.ID], id)
	}
	n := 0
	for shID, ids := range groups {
		owners := make([]string, len(ids))
		for i, id := range ids {
			owners[i] = ownerOf(id)
		}
		sh := s.shards[shID]
		tag, err := sh.Router.Exec(ctx, "INSERT INTO accounts (id, owner) SELECT * FROM unnest($1::bigint[], $2::text[])", ids, owners)
		if err != nil {
			return n, &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
		n += int(tag.RowsAffected())
	}
	// Readers without a token go to replicas: let them replay the seed first.
	for _, sh := range s.shards {
		if err := replayed(ctx, sh); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Load is concurrent traffic on the store: workers that insert accounts, add to balances and read
// them back with read-your-writes, and a lister running the scatter-gather list. Every worker owns
// the ids ≡ its number (mod Workers), so it knows what each of its accounts must hold.
type Load struct {
	store   *Store
	workers []*worker

	mu     sync.Mutex
	errs   []opError
	lists  int
	listOK int
	bad    []string // read-your-writes violations and malformed lists
	slow   time.Duration
}

type opError struct {
	at  time.Time
	op  string
	err error
}

type worker struct {
	rng       *rand.Rand
	sess      *Session
	have      map[int64]int64 // acknowledged balance of each account this worker inserted or seeded
	ids       []int64         // keys of have
	missing   []int64         // ids this worker owns that no acknowledged insert created
	ambiguous map[int64]bool  // writes that failed without saying whether they applied
	ops       int
}

// NewLoad prepares workers over the seeded ids below keys.
func NewLoad(s *Store, workers int, keys int64, seed uint64) *Load {
	l := &Load{store: s}
	for w := range workers {
		wk := &worker{rng: rand.New(rand.NewPCG(seed, uint64(w))), sess: NewSession(), have: map[int64]int64{}, ambiguous: map[int64]bool{}}
		for id := int64(w); id < keys; id += int64(workers) {
			if id%2 == 0 {
				wk.have[id] = 0
				wk.ids = append(wk.ids, id)
			} else {
				wk.missing = append(wk.missing, id)
			}
		}
		l.workers = append(l.workers, wk)
	}
	return l
}

// Run runs the traffic until ctx ends.
func (l *Load) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range l.workers {
		wg.Go(func() { l.work(ctx, w) })
	}
	wg.Go(func() { l.list(ctx) })
	wg.Wait()
}

func (l *Load) fail(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, opError{at: time.Now(), op: op, err: err})
}

func (l *Load) wrong(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad = append(l.bad, fmt.Sprintf(format, args...))
}

func (l *Load) took(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slow = max(l.slow, d)
}

func (l *Load) work(ctx context.Context, w *worker) {
	s := l.store
	for ctx.Err() == nil {
		// The operation itself runs to its end even when ctx ends, so its outcome is known.
		op := context.WithoutCancel(ctx)
		p := w.rng.IntN(100)
		start := time.Now()
		switch {
		case p < 50 && len(w.ids) > 0:
			id := w.ids[w.rng.IntN(len(w.ids))]
			d := w.rng.Int64N(100) + 1
			err := s.Add(op, w.sess, id, d)
			l.took(time.Since(start))
			switch {
			case err == nil:
				w.have[id] += d
			case errors.Is(err, ErrRangeMoving):
				l.fail("add", err) // refused before it ran: not applied
			default:
				l.fail("add", err)
				w.ambiguous[id] = true
			}
		case p < 60 && len(w.missing) > 0:
			i := w.rng.IntN(len(w.missing))
			id := w.missing[i]
			err := s.Insert(op, w.sess, id, ownerOf(id))
			l.took(time.Since(start))
			if err != nil {
				l.fail("insert", err)
			}
			if err == nil || !errors.Is(err, ErrRangeMoving) {
				w.missing = slices.Delete(w.missing, i, i+1)
				if err == nil {
					w.have[id] = 0
					w.ids = append(w.ids, id)
				} else {
					w.ambiguous[id] = true
				}
			}
		case len(w.ids) > 0:
			id := w.ids[w.rng.IntN(len(w.ids))]
			a, err := s.Get(op, w.sess, id)
			if err != nil {
				l.fail("get", err)
			} else if !w.ambiguous[id] && a.Balance != w.have[id] {
				l.wrong("read-your-writes: account %d read balance %d, its last acknowledged write left %d", id, a.Balance, w.have[id])
			}
		}
		w.ops++
	}
}

func (l *Load) list(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		top, err := l.store.Top(context.WithoutCancel(ctx), 10, false)
		l.mu.Lock()
		l.lists++
		l.mu.Unlock()
		if err != nil {
			l.fail("list", err)
			continue
		}
		seen := map[int64]bool{}
		for i, a := range top {
			if seen[a.ID] {
				l.wrong("list: account %d twice", a.ID)
			}
			seen[a.ID] = true
			if i > 0 && byBalance(top[i-1], a) > 0 {
				l.wrong("list: out of order at %d", i)
			}
		}
		if len(top) != 10 {
			l.wrong("list: %d accounts, want 10", len(top))
		}
		l.mu.Lock()
		l.listOK++
		l.mu.Unlock()
	}
}

// LoadReport sums up a Load's run.
type LoadReport struct {
	Ops, Lists   int
	Errors       int            // failed operations, all kinds
	ErrorsByKind map[string]int // "add: range moving", "get: other", …
	Refused      int            // writes refused by the fence (not applied)
	Ambiguous    int            // writes that failed in a way that leaves their outcome unknown
	ErrorSpan    time.Duration  // from the first error to the last
	FirstError   string
	SlowestWrite time.Duration
	Wrong        []string // read-your-writes violations and malformed lists
}

// Report sums up the run so far.
func (l *Load) Report() LoadReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := LoadReport{Lists: l.lists, Errors: len(l.errs), ErrorsByKind: map[string]int{}, SlowestWrite: l.slow, Wrong: slices.Clone(l.bad)}
	for _, w := range l.workers {
		r.Ops += w.ops
		r.Ambiguous += len(w.ambiguous)
	}
	for i, e := range l.errs {
		kind := "other"
		if errors.Is(e.err, ErrRangeMoving) {
			kind = "range moving"
			r.Refused++
		}
		r.ErrorsByKind[e.op+": "+kind]++
		if i == 0 {
			r.FirstError = e.err.Error()
		}
	}
	if n := len(l.errs); n > 0 {
		r.ErrorSpan = l.errs[n-1].at.Sub(l.errs[0].at)
	}
	return r
}

// Check is the end state of the table against what the load was told.
type Check struct {
	Rows, Want       int   // rows on all shards; rows acknowledged
	Sum, WantSum     int64 // sum of balances; acknowledged
	Lost, Duplicated int   // acknowledged rows missing; rows on more than one shard
	Misplaced        int   // rows on a shard the table does not route them to
	Unexpected       int   // rows no acknowledged insert (nor seed) created
	WrongBalance     int   // rows whose balance is not the acknowledged one
	Skipped          int   // rows whose last write was ambiguous, not compared
}

// OK reports whether nothing was lost, duplicated, misplaced or wrong.
func (c Check) OK() bool {
	return c.Lost == 0 && c.Duplicated == 0 && c.Misplaced == 0 && c.Unexpected == 0 && c.WrongBalance == 0 &&
		(c.Skipped > 0 || (c.Rows == c.Want && c.Sum == c.WantSum))
}

// Verify reads every row of every shard's primary and compares them with what the load's writes
// were acknowledged to have done. Call it once the load has stopped.
func (l *Load) Verify(ctx context.Context) (Check, error) {
	var c Check
	where := map[int64][]int{}
	bal := map[int64]int64{}
	t := l.store.Table()
	for _, sh := range l.store.shards {
		rows, err := sh.Router.WriteQuery(ctx, "SELECT id, balance FROM accounts")
		if err != nil {
			return c, &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
		for rows.Next() {
			var id, b int64
			if err := rows.Scan(&id, &b); err != nil {
				rows.Close()
				return c, err
			}
			where[id] = append(where[id], sh.ID)
			bal[id] = b
			c.Rows++
			c.Sum += b
			if want, err := t.Route(id); err != nil || want != sh.ID {
				c.Misplaced++
			}
		}
		if err := rows.Err(); err != nil {
			return c, &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
	}
	for _, shs := range where {
		if len(shs) > 1 {
			c.Duplicated++
		}
	}
	for _, w := range l.workers {
		for id, want := range w.have {
			c.Want++
			c.WantSum += want
			if w.ambiguous[id] {
				continue
			}
			got, ok := bal[id]
			switch {
			case !ok:
				c.Lost++
			case got != want:
				c.WrongBalance++
			}
		}
		c.Skipped += len(w.ambiguous)
		for _, id := range w.missing {
			if _, ok := bal[id]; ok && !w.ambiguous[id] {
				c.Unexpected++
			}
		}
	}
	return c, nil
}

// sortedKinds returns the keys of m in order.
func sortedKinds(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
