package writebehind

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// journalPage bounds every read of the stream or of a pending list.
const journalPage = 500

// own returns this consumer's pending entries: those of a previous process that used the same
// consumer name, and those of this one not acknowledged yet.
func (j *Journal[K, V]) own(ctx context.Context) ([]redis.XMessage, error) {
	var out []redis.XMessage
	from := "0"
	for {
		rctx, cancel := context.WithTimeout(ctx, j.timeout)
		res, err := j.client.XReadGroup(rctx, j.readArgs(from, journalPage)).Result()
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			return out, fmt.Errorf("writebehind: journal: read own pending entries: %w", err)
		}
		msgs := journalMessages(res)
		out = append(out, msgs...)
		if len(msgs) < journalPage {
			return out, nil
		}
		from = msgs[len(msgs)-1].ID
	}
}

// claim takes over the entries that other consumers left unacknowledged for ClaimIdle, at most
// limit of them.
func (j *Journal[K, V]) claim(ctx context.Context, limit int) ([]redis.XMessage, error) {
	var out []redis.XMessage
	start := "0-0"
	for len(out) < limit {
		rctx, cancel := context.WithTimeout(ctx, j.timeout)
		msgs, next, err := j.client.XAutoClaim(rctx, &redis.XAutoClaimArgs{
			Stream:   j.stream,
			Group:    j.group,
			Consumer: j.consumer,
			MinIdle:  j.claimIdle,
			Start:    start,
			Count:    int64(min(journalPage, limit-len(out))),
		}).Result()
		cancel()
		if err != nil {
			return out, fmt.Errorf("writebehind: journal: claim: %w", err)
		}
		out = append(out, msgs...)
		if next == "0-0" || next == "" {
			return out, nil
		}
		start = next
	}
	return out, nil
}

// keepalive resets the idle time of this consumer's older pending entries, so that no other
// instance claims the writes of a live one that is still retrying them.
func (j *Journal[K, V]) keepalive(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	threshold := j.claimIdle / 3
	start := "-"
	for {
		pend, err := j.client.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: j.stream, Group: j.group, Consumer: j.consumer,
			Idle: threshold, Start: start, End: "+", Count: journalPage,
		}).Result()
		if err != nil {
			return fmt.Errorf("writebehind: journal: keepalive: %w", err)
		}
		if len(pend) == 0 {
			return nil
		}
		ids := make([]string, len(pend))
		for i, p := range pend {
			ids[i] = p.ID
		}
		err = j.client.XClaimJustID(ctx, &redis.XClaimArgs{
			Stream: j.stream, Group: j.group, Consumer: j.consumer, MinIdle: threshold, Messages: ids,
		}).Err()
		if err != nil {
			return fmt.Errorf("writebehind: journal: keepalive: %w", err)
		}
		if len(pend) < journalPage {
			return nil
		}
		start = "(" + ids[len(ids)-1]
	}
}

// superseded returns the IDs among entries for which the stream holds a newer entry of the same
// key: applying them would roll the key back.
func (j *Journal[K, V]) superseded(ctx context.Context, entries []journalEntry[K, V]) (map[string]bool, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	oldest := entries[0].id
	for _, e := range entries[1:] {
		if journalIDLess(e.id, oldest) {
			oldest = e.id
		}
	}
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	latest := make(map[string]string) // encoded key → newest ID
	start := "(" + oldest
	for {
		msgs, err := j.client.XRangeN(ctx, j.stream, start, "+", journalPage).Result()
		if err != nil {
			return nil, fmt.Errorf("writebehind: journal: scan for newer writes: %w", err)
		}
		for _, m := range msgs {
			if k, ok := m.Values[journalKey].(string); ok {
				latest[k] = m.ID
			}
		}
		if len(msgs) < journalPage {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	out := make(map[string]bool)
	for _, e := range entries {
		if newest, ok := latest[e.key]; ok && journalIDLess(e.id, newest) {
			out[e.id] = true
		}
	}
	return out, nil
}

// trim removes the entries that every consumer group has acknowledged: those delivered to the
// group (up to its last-delivered ID) and no longer pending in it. Entries not delivered yet and
// pending entries are never removed, whatever their age. The group's last-delivered ID is read
// before its pending summary: an entry acknowledged in between is only kept longer.
func (j *Journal[K, V]) trim(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	groups, err := j.client.XInfoGroups(rctx, j.stream).Result()
	if err != nil {
		return fmt.Errorf("writebehind: journal: trim: %w", err)
	}
	bound := ""
	for _, g := range groups {
		b := g.LastDeliveredID
		if g.Pending > 0 {
			sum, err := j.client.XPending(rctx, j.stream, g.Name).Result()
			if err != nil {
				return fmt.Errorf("writebehind: journal: trim: %w", err)
			}
			if sum.Count > 0 && journalIDLess(sum.Lower, b) {
				b = sum.Lower
			}
		}
		if bound == "" || journalIDLess(b, bound) {
			bound = b
		}
	}
	if bound == "" || bound == "0-0" {
		return nil
	}
	if err := j.client.XTrimMinID(rctx, j.stream, bound).Err(); err != nil {
		return fmt.Errorf("writebehind: journal: trim: %w", err)
	}
	return nil
}

// undelivered reads entries no consumer of the group has read yet (appended by something else
// than a Queue, or before the group was created), at most limit, delivering them to this
// consumer.
func (j *Journal[K, V]) undelivered(ctx context.Context, limit int) ([]redis.XMessage, error) {
	var out []redis.XMessage
	for len(out) < limit {
		rctx, cancel := context.WithTimeout(ctx, j.timeout)
		res, err := j.client.XReadGroup(rctx, j.readArgs(">", min(journalPage, limit-len(out)))).Result()
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			return out, fmt.Errorf("writebehind: journal: read undelivered entries: %w", err)
		}
		msgs := journalMessages(res)
		out = append(out, msgs...)
		if len(msgs) < journalPage {
			break
		}
	}
	return out, nil
}

// pendingIDs lists this consumer's pending entries.
func (j *Journal[K, V]) pendingIDs(ctx context.Context) ([]string, error) {
	var ids []string
	start := "-"
	for {
		rctx, cancel := context.WithTimeout(ctx, j.timeout)
		pend, err := j.client.XPendingExt(rctx, &redis.XPendingExtArgs{
			Stream: j.stream, Group: j.group, Consumer: j.consumer, Start: start, End: "+", Count: journalPage,
		}).Result()
		cancel()
		if err != nil {
			return ids, fmt.Errorf("writebehind: journal: list pending entries: %w", err)
		}
		for _, p := range pend {
			ids = append(ids, p.ID)
		}
		if len(pend) < journalPage {
			return ids, nil
		}
		start = "(" + pend[len(pend)-1].ID
	}
}

// fetch returns the entries with the given IDs that are still in the stream.
func (j *Journal[K, V]) fetch(ctx context.Context, ids []string) ([]redis.XMessage, error) {
	var out []redis.XMessage
	for _, id := range ids {
		rctx, cancel := context.WithTimeout(ctx, j.timeout)
		msgs, err := j.client.XRangeN(rctx, j.stream, id, id, 1).Result()
		cancel()
		if err != nil {
			return out, fmt.Errorf("writebehind: journal: read entry %s: %w", id, err)
		}
		out = append(out, msgs...)
	}
	return out, nil
}
