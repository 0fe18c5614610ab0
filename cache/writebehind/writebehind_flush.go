package writebehind

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/girder-go/girder/cache"
)

// dispatch starts flushes: at once when BatchSize keys wait or a Flush is waiting, otherwise Delay
// after the first write found the queue empty. A key stays in the queue, where later writes
// coalesce into it, until a flusher is free to take it.
func (wb *Queue[K, V]) dispatch() {
	defer wb.wg.Done()
	q := &wb.q
	delay := wb.opts.Delay
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed, due := false, false
	for {
		select {
		case <-wb.stop:
			return
		default:
		}
		q.mu.Lock()
		n := q.ready()
		if n == 0 {
			due = false
		}
		if n >= q.batch || (n > 0 && (due || delay < 0 || q.urgent > 0 || q.closed)) {
			q.mu.Unlock()
			select {
			case wb.tokens <- struct{}{}:
			case <-wb.stop:
				return
			}
			q.mu.Lock()
			items := q.take(q.batch)
			q.mu.Unlock()
			if items == nil {
				<-wb.tokens
				continue
			}
			wb.wg.Add(1)
			go wb.flushItems(items)
			continue
		}
		if n > 0 && !armed {
			timer.Reset(delay)
			armed = true
		}
		q.mu.Unlock()
		select {
		case <-q.kick:
		case <-timer.C:
			armed, due = false, true
		case <-wb.stop:
			timer.Stop()
			return
		}
	}
}

// flushItems writes one batch with retries, acknowledges it in the journal, hands what failed
// every attempt to DeadLetter, and releases the keys.
func (wb *Queue[K, V]) flushItems(items []*wbItem[K, V]) {
	defer wb.wg.Done()
	defer func() { <-wb.tokens }()
	if failed := wb.writeWithRetry(wb.ctx, items); len(failed) > 0 {
		wb.deadLetter(failed)
	}
	if wb.journal != nil {
		wb.ackItems(items)
	}
	wb.q.mu.Lock()
	wb.q.done(items)
	wb.q.mu.Unlock()
}

// writeWithRetry writes items in rounds. In each round the items left are written as one batch;
// a failing batch is split in halves down to single writes, so the writes that fail are found
// and the others applied. Between rounds it waits for the backoff delay. It returns the items
// that failed every attempt; those abandoned because ctx ended (Close gave up) are marked aborted.
func (wb *Queue[K, V]) writeWithRetry(ctx context.Context, items []*wbItem[K, V]) []*wbItem[K, V] {
	left := items
	for attempt := 0; ; attempt++ {
		var fails []*wbItem[K, V]
		fails = wb.writeSplit(ctx, left, attempt, fails)
		if len(fails) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			abandon(fails)
			return nil
		}
		if attempt >= wb.retries {
			return fails
		}
		timer := time.NewTimer(wb.retry.Delay(attempt))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			abandon(fails)
			return nil
		}
		left = fails
	}
}

// abandon marks items that Close gave up on: neither written nor dead-lettered.
func abandon[K comparable, V any](items []*wbItem[K, V]) {
	for _, it := range items {
		it.aborted = true
	}
}

func (wb *Queue[K, V]) writeSplit(ctx context.Context, g []*wbItem[K, V], attempt int, fails []*wbItem[K, V]) []*wbItem[K, V] {
	if wb.batcher == nil || len(g) == 1 {
		for _, it := range g {
			err := wb.apply(ctx, []*wbItem[K, V]{it})
			wb.callFlushed(1, attempt, err)
			it.err = err
			if err != nil {
				it.attempts++
				fails = append(fails, it)
			}
		}
		return fails
	}
	err := wb.apply(ctx, g)
	wb.callFlushed(len(g), attempt, err)
	if err == nil {
		for _, it := range g {
			it.err = nil
		}
		return fails
	}
	if ctx.Err() != nil {
		for _, it := range g {
			it.err = err
		}
		return append(fails, g...)
	}
	mid := len(g) / 2
	fails = wb.writeSplit(ctx, g[:mid], attempt, fails)
	return wb.writeSplit(ctx, g[mid:], attempt, fails)
}

// apply makes one call to the store: WriteBatch for several items, Write or Delete for one. A
// panic in the store comes back as an error.
func (wb *Queue[K, V]) apply(ctx context.Context, g []*wbItem[K, V]) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	if len(g) == 1 {
		w := g[0].w
		if w.Delete {
			return wb.store.Delete(ctx, w.Key)
		}
		return wb.store.Write(ctx, w.Key, w.Value)
	}
	writes := make([]cache.Write[K, V], len(g))
	for i, it := range g {
		writes[i] = it.w
	}
	return wb.batcher.WriteBatch(ctx, writes)
}

func (wb *Queue[K, V]) deadLetter(items []*wbItem[K, V]) {
	failed := make([]FailedWrite[K, V], len(items))
	for i, it := range items {
		failed[i] = FailedWrite[K, V]{Write: it.w, Err: it.err, Attempts: it.attempts}
	}
	if wb.opts.DeadLetter == nil {
		for _, f := range failed {
			wb.log.Error("writebehind: write failed every attempt", "key", f.Key, "delete", f.Delete, "attempts", f.Attempts, "err", f.Err)
		}
		return
	}
	defer func() {
		if r := recover(); r != nil {
			wb.log.Error("writebehind: DeadLetter panicked", "panic", r)
		}
	}()
	wb.opts.DeadLetter(failed)
}
