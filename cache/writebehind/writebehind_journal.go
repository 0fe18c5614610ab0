package writebehind

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
)

// wbAppend is a write waiting for the journal appender.
type wbAppend[K comparable, V any] struct {
	w      cache.Write[K, V]
	fields []any
	epoch  uint64
	done   chan error
	state  atomic.Int32 // wbWaiting, then wbTaken by the appender or wbGivenUp by the writer
}

const (
	wbWaiting int32 = iota
	wbTaken
	wbGivenUp
)

var wbAppendDone = sync.Pool{New: func() any { return make(chan error, 1) }}

// journalRecoverLimit bounds the writes taken over from other instances per round.
const journalRecoverLimit = 5000

// appendJournal hands an admitted, encoded write (its reservation taken) to the appender and
// waits until it is durable and queued.
func (wb *Queue[K, V]) appendJournal(ctx context.Context, r *wbAppend[K, V]) error {
	done := wbAppendDone.Get().(chan error)
	// The appender answers every request it receives, even after Close, so this send never
	// strands a reservation.
	r.done = done
	wb.appends <- r
	timer := time.NewTimer(wb.journal.timeout)
	defer timer.Stop()
	var why error
	select {
	case err := <-done:
		wbAppendDone.Put(done)
		return err
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("journal Timeout %v", wb.journal.timeout)
	}
	if r.state.CompareAndSwap(wbWaiting, wbGivenUp) {
		// The appender had not taken it: it never will, and releases the reservation.
		return fmt.Errorf("writebehind: journal append not started: %w", why)
	}
	// The append is under way: it may still take effect and the write be applied.
	return fmt.Errorf("writebehind: journal append: %w: %w", ErrJournalAmbiguous, why)
}

// appendLoop is the journal's single appender: it groups the writes waiting into one MULTI/EXEC
// (group commit) and queues them in stream order, so the queue's order per key is the journal's.
func (wb *Queue[K, V]) appendLoop() {
	defer wb.wg.Done()
	// Append nothing before the start-up recovery has read this consumer's pending entries, so
	// that it reads only those of a previous process.
	select {
	case <-wb.started:
	case <-wb.stop:
		wb.refuseAppends()
		return
	}
	var batch []*wbAppend[K, V]
	var fields [][]any
	for {
		select {
		case r := <-wb.appends:
			batch = append(batch[:0], r)
		case <-wb.stop:
			wb.refuseAppends()
			return
		}
	fill:
		for len(batch) < wb.opts.BatchSize {
			select {
			case r := <-wb.appends:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		// Drop the writes whose writer gave up before the append started: they are not sent.
		kept := batch[:0]
		for _, r := range batch {
			if r.state.CompareAndSwap(wbWaiting, wbTaken) {
				kept = append(kept, r)
				continue
			}
			wb.q.mu.Lock()
			wb.q.unreserve(r.epoch)
			wb.q.mu.Unlock()
		}
		clear(batch[len(kept):])
		batch = kept
		if len(batch) == 0 {
			continue
		}
		fields = fields[:0]
		for _, r := range batch {
			fields = append(fields, r.fields)
		}
		wb.appendMu.Lock()
		ids, adopted, err := wb.journal.append(wb.ctx, fields)
		if ids == nil && errors.Is(err, ErrJournalAmbiguous) {
			wb.orphans.Store(true)
		}
		wb.q.mu.Lock()
		// Adopted entries are older than this batch: queue them first, so ours win per key.
		wb.adopt(adopted)
		for i, r := range batch {
			if ids == nil {
				wb.q.unreserve(r.epoch)
				continue
			}
			wb.q.putReserved(r.w, ids[i], r.epoch)
		}
		wb.q.mu.Unlock()
		wb.appendMu.Unlock()
		for i, r := range batch {
			r.done <- err // nil, or an error; a *JournalReplicaError comes with the write queued
			batch[i] = nil
		}
	}
}

// refuseAppends answers, after Close, the writes admitted but not yet appended.
func (wb *Queue[K, V]) refuseAppends() {
	for {
		wb.q.mu.Lock()
		left := wb.q.reserved
		wb.q.mu.Unlock()
		if left == 0 {
			return
		}
		r := <-wb.appends
		wb.q.mu.Lock()
		wb.q.unreserve(r.epoch)
		wb.q.mu.Unlock()
		r.done <- cache.ErrClosed
	}
}

// adopt queues entries delivered to this instance that it did not append. Called with q.mu held.
func (wb *Queue[K, V]) adopt(msgs []redis.XMessage) {
	for _, m := range msgs {
		e, err := wb.journal.decode(m)
		if err != nil {
			// Left pending: an operator can read it with XPENDING, and nothing is lost silently.
			wb.log.Error("writebehind: undecodable journal entry left pending", "id", m.ID, "err", err)
			continue
		}
		wb.q.put(e.w, e.id, wb.q.epoch, false)
	}
}

// ackItems acknowledges the journal entries of written and dead-lettered items. Entries whose
// acknowledgement fails are retried by the recovery loop.
func (wb *Queue[K, V]) ackItems(items []*wbItem[K, V]) {
	var ids []string
	for _, it := range items {
		if !it.aborted {
			ids = append(ids, it.ids...)
		}
	}
	wb.ack(ids)
}

func (wb *Queue[K, V]) ack(ids []string) {
	if len(ids) == 0 {
		return
	}
	// Acknowledge even when Close has given up: the write is in the store.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(wb.ctx), 5*time.Second)
	defer cancel()
	if err := wb.journal.ack(ctx, ids); err != nil {
		wb.log.Warn("writebehind: journal ack failed, will retry", "entries", len(ids), "err", err)
		wb.ackMu.Lock()
		wb.unacked = append(wb.unacked, ids...)
		wb.ackMu.Unlock()
	}
}

// recoverLoop takes back this consumer's own pending entries at start, then every ClaimIdle/3
// keeps its own entries from being claimed, claims those of dead instances, retries failed
// acknowledgements and trims the stream.
func (wb *Queue[K, V]) recoverLoop() {
	defer close(wb.recoverDone)
	wb.recoverOnce(wb.ctx, true)
	close(wb.started)
	ticker := time.NewTicker(wb.journal.claimIdle / 3)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			wb.recoverOnce(wb.ctx, false)
		case <-wb.recoverStop:
			return
		}
	}
}

// recoverOnce is one round of recoverLoop; it returns how many writes it queued.
func (wb *Queue[K, V]) recoverOnce(ctx context.Context, own bool) int {
	wb.recoverMu.Lock()
	defer wb.recoverMu.Unlock()
	j := wb.journal
	if err := j.keepalive(ctx); err != nil {
		wb.log.Warn("writebehind: journal keepalive", "err", err)
	}
	var msgs []redis.XMessage
	if own {
		m, err := j.own(ctx)
		if err != nil {
			wb.log.Warn("writebehind: journal recovery", "err", err)
		}
		msgs = m
	}
	if wb.orphans.Swap(false) {
		m, err := wb.findOrphans(ctx)
		if err != nil {
			wb.orphans.Store(true)
			wb.log.Warn("writebehind: journal orphan scan", "err", err)
		}
		msgs = append(msgs, m...)
	}
	undelivered, err := j.undelivered(ctx, journalRecoverLimit)
	if err != nil {
		wb.log.Warn("writebehind: journal undelivered entries", "err", err)
	}
	msgs = append(msgs, undelivered...)
	claimed, err := j.claim(ctx, journalRecoverLimit)
	if err != nil {
		wb.log.Warn("writebehind: journal claim", "err", err)
	}
	msgs = append(msgs, claimed...)
	msgs = append(msgs, wb.retryRec...)
	wb.retryRec = nil
	n := wb.requeue(ctx, msgs)
	wb.ackMu.Lock()
	retry := wb.unacked
	wb.unacked = nil
	wb.ackMu.Unlock()
	wb.ack(retry)
	if err := j.trim(ctx); err != nil {
		wb.log.Warn("writebehind: journal trim", "err", err)
	}
	return n
}

// findOrphans returns this consumer's pending entries that it does not hold in memory: those of
// appends whose reply was lost (ErrJournalAmbiguous) but that took effect. Without this they
// would stay pending, kept alive by keepalive, and never be applied.
func (wb *Queue[K, V]) findOrphans(ctx context.Context) ([]redis.XMessage, error) {
	wb.appendMu.Lock()
	known := make(map[string]bool)
	wb.q.mu.Lock()
	wb.q.journalIDs(known)
	wb.q.mu.Unlock()
	wb.ackMu.Lock()
	for _, id := range wb.unacked {
		known[id] = true
	}
	wb.ackMu.Unlock()
	for _, m := range wb.retryRec {
		known[m.ID] = true
	}
	// No append can run until the pending list is read: what is pending and unknown now is an
	// orphan.
	ids, err := wb.journal.pendingIDs(ctx)
	wb.appendMu.Unlock()
	if err != nil {
		return nil, err
	}
	var orphans []string
	for _, id := range ids {
		if !known[id] {
			orphans = append(orphans, id)
		}
	}
	return wb.journal.fetch(ctx, orphans)
}

// requeue queues recovered entries, skipping those the stream holds a newer write of the same key
// for. It holds the appender's lock so no local write of the same key slips in between the check
// and the queueing.
func (wb *Queue[K, V]) requeue(ctx context.Context, msgs []redis.XMessage) int {
	if len(msgs) == 0 {
		return 0
	}
	entries := make([]journalEntry[K, V], 0, len(msgs))
	for _, m := range msgs {
		e, err := wb.journal.decode(m)
		if err != nil {
			wb.log.Error("writebehind: undecodable journal entry left pending", "id", m.ID, "err", err)
			continue
		}
		entries = append(entries, e)
	}
	wb.appendMu.Lock()
	defer wb.appendMu.Unlock()
	old, err := wb.journal.superseded(ctx, entries)
	if err != nil {
		// Without the check a recovered write could roll a key back; try again next round (the
		// entries are this consumer's now, so only this instance can).
		wb.log.Warn("writebehind: journal recovery postponed", "err", err)
		wb.retryRec = msgs
		return 0
	}
	var skip []string
	n := 0
	wb.q.mu.Lock()
	for _, e := range entries {
		if old[e.id] {
			skip = append(skip, e.id)
			continue
		}
		wb.q.put(e.w, e.id, wb.q.epoch, false)
		n++
	}
	wb.q.mu.Unlock()
	wb.ack(skip)
	return n
}
