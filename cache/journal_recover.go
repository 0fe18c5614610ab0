package cache

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
		res, err := j.client.XReadGroup(ctx, j.readArgs(from, journalPage)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return out, fmt.Errorf("cache: journal: read own pending entries: %w", err)
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
		msgs, next, err := j.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream:   j.stream,
			Group:    j.group,
			Consumer: j.consumer,
			MinIdle:  j.claimIdle,
			Start:    start,
			Count:    int64(min(journalPage, limit-len(out))),
		}).Result()
		if err != nil {
			return out, fmt.Errorf("cache: journal: claim: %w", err)
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
	threshold := j.claimIdle / 3
	start := "-"
	for {
		pend, err := j.client.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: j.stream, Group: j.group, Consumer: j.consumer,
			Idle: threshold, Start: start, End: "+", Count: journalPage,
		}).Result()
		if err != nil {
			return fmt.Errorf("cache: journal: keepalive: %w", err)
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
			return fmt.Errorf("cache: journal: keepalive: %w", err)
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
	latest := make(map[string]string) // encoded key → newest ID
	start := "(" + oldest
	for {
		msgs, err := j.client.XRangeN(ctx, j.stream, start, "+", journalPage).Result()
		if err != nil {
			return nil, fmt.Errorf("cache: journal: scan for newer writes: %w", err)
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

// trim removes acknowledged entries that no recovery needs any more: everything older than the
// oldest pending entry. The last ID is read before the pending summary, so an entry appended in
// between (always pending at once) is newer than the bound and stays.
func (j *Journal[K, V]) trim(ctx context.Context) error {
	last, err := j.client.XRevRangeN(ctx, j.stream, "+", "-", 1).Result()
	if err != nil || len(last) == 0 {
		return err
	}
	bound := last[0].ID
	sum, err := j.client.XPending(ctx, j.stream, j.group).Result()
	if err != nil {
		return fmt.Errorf("cache: journal: trim: %w", err)
	}
	if sum.Count > 0 && journalIDLess(sum.Lower, bound) {
		bound = sum.Lower
	}
	if err := j.client.XTrimMinID(ctx, j.stream, bound).Err(); err != nil {
		return fmt.Errorf("cache: journal: trim: %w", err)
	}
	return nil
}
