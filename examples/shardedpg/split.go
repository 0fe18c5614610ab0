package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/shard"
)

// MoveReport says what a Move did and how long writes to the moving range were held.
type MoveReport struct {
	From, To        string
	Range           string // the keys moved, as [lo, hi)
	Version         uint64 // the table version that routes them to To
	Copied          int    // rows of the bulk copy, while writes went on
	CaughtUp        int    // rows changed during the bulk copy, copied again before the fence
	CaughtUpFenced  int    // rows changed since, copied under the fence
	Rows            int    // rows of the range at the switch, equal on both shards
	Checksum        int64  // their checksum, equal on both shards
	Deleted         int    // rows removed from the old shard after the switch
	FenceStart      time.Time
	Fence           time.Duration // from raising the fence to lifting it: writes to the range wait
	Total           time.Duration
	ReplicaCaughtUp time.Duration // waiting, under the fence, for the new shard's replicas
}

// Move moves the keys from at to the end of the range holding at to shard to (an ID), while reads
// and writes go on:
//
//  1. copy the range's rows from the old shard's primary to the new one's, unfenced;
//  2. copy again what changed meanwhile (a diff of the two sides), still unfenced, and wait until
//     the new shard's replicas have replayed the copy;
//  3. raise a write fence on the range: new writes to it wait (up to FenceWait, then fail with
//     ErrRangeMoving, not applied), and the writes already in flight on it finish;
//  4. under the fence, copy the last differences, check that both sides hold the same rows (count
//     and checksum), and wait for the replicas again only if rows changed under the fence;
//  5. switch: publish the RangeRouter's next table version, which routes the range to the new
//     shard, and lift the fence — the waiting writes route again and land on the new shard;
//  6. delete the range's rows from the old shard.
//
// Reads are never fenced: until the switch they read the old shard, which has every write, and
// after it the new one, whose replicas have replayed the copy. A read routed by the old table that
// reaches the old shard after step 6 finds nothing and routes again (Store.Get). Lists ask each
// shard only for the ranges the table gives it, so a row on both sides between 5 and 6 counts once.
//
// The fence lasts as long as step 4: two reads of the range and usually nothing to write, not the
// bulk copy. Any failure before step 5 lifts the fence without switching, leaving the range on the
// old shard (the partial copy on the new shard is deleted by the next Move to it). Moves are not
// concurrent with each other (the caller serializes them).
func (s *Store) Move(ctx context.Context, at int64, to int) (rep MoveReport, err error) {
	start := time.Now()
	if to < 0 || to >= len(s.shards) {
		return rep, fmt.Errorf("shardedpg: move to shard %d of %d", to, len(s.shards))
	}
	var cur shard.Range[int64, int]
	found := false
	for _, r := range s.ranges.Table().Ranges() {
		if (r.NoStart || r.Start <= at) && (r.NoEnd || at < r.End) {
			cur, found = r, true
		}
	}
	if !found {
		return rep, fmt.Errorf("shardedpg: move: no range holds %d", at)
	}
	if cur.Shard == to {
		return rep, fmt.Errorf("shardedpg: move: keys from %d are on %s already", at, s.shards[to].Name)
	}
	src, dst := s.shards[cur.Shard], s.shards[to]
	moving := shard.Range[int64, int]{Start: at, End: cur.End, NoEnd: cur.NoEnd}
	pred, args := rangePredicate([]shard.Range[int64, int]{moving})
	rep.From, rep.To = src.Name, dst.Name
	rep.Range = fmt.Sprintf("[%d, %s)", at, map[bool]string{true: "∞", false: fmt.Sprint(cur.End)}[cur.NoEnd])

	// Leftovers of an earlier, failed move to dst.
	if _, err := dst.Router.Exec(ctx, "DELETE FROM accounts WHERE "+pred, args...); err != nil {
		return rep, &ShardError{Shard: dst.Name, Key: -1, Err: err}
	}
	if rep.Copied, err = syncRange(ctx, src, dst, pred, args); err != nil {
		return rep, err
	}
	if rep.CaughtUp, err = syncRange(ctx, src, dst, pred, args); err != nil {
		return rep, err
	}

	// The new shard's replicas replay the copy before the fence, so that the fence need not wait
	// for them unless rows change under it.
	if err := replayed(ctx, dst); err != nil {
		return rep, err
	}

	f := s.gate.raise(at, cur.End, cur.NoEnd)
	rep.FenceStart = time.Now()
	switched := false
	defer func() {
		s.gate.lift(f)
		rep.Fence = time.Since(rep.FenceStart)
		if switched {
			// 6. The old shard's copy is unreachable now; remove it.
			tag, derr := src.Router.Exec(ctx, "DELETE FROM accounts WHERE "+pred, args...)
			if derr != nil && err == nil {
				err = &ShardError{Shard: src.Name, Key: -1, Err: fmt.Errorf("clean up after the switch: %w", derr)}
			}
			rep.Deleted = int(tag.RowsAffected())
		}
		rep.Total = time.Since(start)
	}()

	if rep.CaughtUpFenced, err = syncRange(ctx, src, dst, pred, args); err != nil {
		return rep, err
	}
	var n [2]int
	var sum [2]int64
	for i, sh := range []*Shard{src, dst} {
		q := "SELECT count(*), coalesce(sum(hashtext(id::text || ':' || owner || ':' || balance::text)::bigint), 0) FROM accounts WHERE " + pred
		if err := sh.Router.WriteQueryRow(ctx, q, args...).Scan(&n[i], &sum[i]); err != nil {
			return rep, &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
	}
	if n[0] != n[1] || sum[0] != sum[1] {
		return rep, fmt.Errorf("shardedpg: move: %s has %d rows (checksum %d) and %s %d (checksum %d) under the fence",
			src.Name, n[0], sum[0], dst.Name, n[1], sum[1])
	}
	rep.Rows, rep.Checksum = n[0], sum[0]

	// Only what changed under the fence is left for the replicas to replay (usually nothing).
	if rep.CaughtUpFenced > 0 {
		waited := time.Now()
		if err := replayed(ctx, dst); err != nil {
			return rep, err
		}
		rep.ReplicaCaughtUp = time.Since(waited)
	}

	// 5. The switch: one atomic store of the next table version.
	if cur.NoStart || cur.Start != at {
		rep.Version, err = s.ranges.Split(at, cur.Shard, to)
	} else {
		rs := s.ranges.Table().Ranges()
		for i := range rs {
			if rs[i].Start == cur.Start && rs[i].NoStart == cur.NoStart {
				rs[i].Shard = to
			}
		}
		rep.Version, err = s.ranges.Replace(rs)
	}
	if err != nil {
		return rep, fmt.Errorf("shardedpg: move: %w", err)
	}
	switched = true
	return rep, nil
}

// replayed waits until sh's replicas have replayed everything its primary has written so far.
func replayed(ctx context.Context, sh *Shard) error {
	if len(sh.pools) < 2 { // no replicas
		return nil
	}
	tok, err := sh.Router.Token(ctx)
	if err != nil {
		return &ShardError{Shard: sh.Name, Key: -1, Err: err}
	}
	rctx := replica.WithTokenPolicy(ctx, tok, replica.TokenPolicy{Wait: 10 * time.Second, NoFallback: true})
	var one int
	if err := sh.Router.ReadQueryRow(rctx, "SELECT 1").Scan(&one); err != nil {
		return &ShardError{Shard: sh.Name, Key: -1, Err: fmt.Errorf("replicas did not catch up with the primary: %w", err)}
	}
	return nil
}

type row struct {
	owner        string
	balance, rev int64
}

// syncRange makes dst's rows matching pred equal to src's (both primaries), and returns how many
// rows it wrote or deleted on dst.
func syncRange(ctx context.Context, src, dst *Shard, pred string, args []any) (int, error) {
	read := func(sh *Shard) (map[int64]row, error) {
		rows, err := sh.Router.WriteQuery(ctx, "SELECT id, owner, balance, rev FROM accounts WHERE "+pred, args...)
		if err != nil {
			return nil, &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
		m := map[int64]row{}
		var id int64
		var r row
		_, err = pgx.ForEachRow(rows, []any{&id, &r.owner, &r.balance, &r.rev}, func() error {
			m[id] = r
			return nil
		})
		if err != nil {
			return nil, &ShardError{Shard: sh.Name, Key: -1, Err: err}
		}
		return m, nil
	}
	from, err := read(src)
	if err != nil {
		return 0, err
	}
	to, err := read(dst)
	if err != nil {
		return 0, err
	}
	var ids, bals, revs []int64
	var owners []string
	for id, r := range from {
		if t, ok := to[id]; !ok || t != r {
			ids, owners, bals, revs = append(ids, id), append(owners, r.owner), append(bals, r.balance), append(revs, r.rev)
		}
	}
	var gone []int64
	for id := range to {
		if _, ok := from[id]; !ok {
			gone = append(gone, id)
		}
	}
	if len(ids) > 0 {
		_, err := dst.Router.Exec(ctx, `INSERT INTO accounts (id, owner, balance, rev)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])
			ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, balance = excluded.balance, rev = excluded.rev`,
			ids, owners, bals, revs)
		if err != nil {
			return 0, &ShardError{Shard: dst.Name, Key: -1, Err: err}
		}
	}
	if len(gone) > 0 {
		if _, err := dst.Router.Exec(ctx, "DELETE FROM accounts WHERE id = ANY($1)", gone); err != nil {
			return 0, &ShardError{Shard: dst.Name, Key: -1, Err: err}
		}
	}
	return len(ids) + len(gone), nil
}
