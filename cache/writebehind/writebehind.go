package writebehind

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/internal/backoff"
	"github.com/redis/go-redis/v9"
)

// Queue is a cache.Writer that acknowledges a write as soon as it is queued and applies it to the
// store of record later, in batches. Give it to a write-through Cache as its writer and the Cache
// becomes write-behind: Set updates every level at once (so reads during the delay see the new
// value) and returns once the write is queued.
//
// Guarantees:
//   - Coalescing: only the latest value of a key is written; a Delete is a write like any other.
//   - Order per key: a key is never written by two flushes at once, and a later write of a key is
//     never applied before an earlier one.
//   - Bounded: at most QueueSize keys wait; when the queue is full, WhenFull decides (block, write
//     synchronously, or reject with ErrQueueFull); nothing is dropped silently.
//   - Failures are retried with exponential backoff and jitter; a failing batch is split so that
//     one bad write does not hold back the rest; a write that fails every attempt goes to the
//     DeadLetter hook.
//   - Flush and Close return only when everything accepted before them is written or handed to
//     DeadLetter; Close reports what its deadline left unwritten as an *UnwrittenError.
//   - With a Journal, every write is first appended to a Redis stream and acknowledged there only
//     after the store took it, so a write acknowledged to the caller survives a crash: another
//     instance (or this one, restarted with the same consumer name) claims and applies it.
//
// Consistency: the store of record lags the caches by up to Delay plus the flush time; readers of
// the store (not of the cache) see the old value until then. Without a journal, a crash loses what
// was queued. Writes of one key by two instances are not ordered against each other, as with
// write-through.
//
// A Queue is safe for concurrent use. It starts goroutines: call Close. The zero value is not
// usable; create one with New.
type Queue[K comparable, V any] struct {
	store     cache.Writer[K, V]
	batcher   cache.BatchWriter[K, V] // store, when it can write batches
	opts      Options[K, V]
	retry     backoff.Policy
	retries   int
	log       *slog.Logger
	q         wbQueue[K, V]
	journal   *Journal[K, V]
	appends   chan *wbAppend[K, V] // to the journal appender
	appendMu  sync.Mutex           // held while appending and queueing, and while recovering
	ackMu     sync.Mutex
	unacked   []string         // journal entries whose acknowledgement failed
	recoverMu sync.Mutex       // one recovery round at a time; guards retryRec
	retryRec  []redis.XMessage // recovered entries waiting for a successful check
	orphans   atomic.Bool      // an append was ambiguous: look for entries of ours not in memory
	started   chan struct{}    // closed when the journal's first recovery round is done
	// recoverStop stops the recovery loop first on Close, so that it queues nothing after the
	// final flush; recoverDone is closed when it has returned.
	recoverStop chan struct{}
	recoverDone chan struct{}
	tokens      chan struct{}   // one per running flush
	ctx         context.Context // canceled when Close gives up
	cancel      context.CancelFunc
	stop        chan struct{} // closed by Close to stop the background goroutines
	wg          sync.WaitGroup
	close       sync.Once
	closeErr    error
}

// FullPolicy says what a write does when the write-behind queue is full.
type FullPolicy int

const (
	// FullBlock waits for room until the write's context is done (the default).
	FullBlock FullPolicy = iota
	// FullSync writes to the store synchronously, in the caller's goroutine, as write-through would.
	FullSync
	// FullReject returns ErrQueueFull at once.
	FullReject
)

// String returns the policy's name.
func (p FullPolicy) String() string {
	switch p {
	case FullBlock:
		return "block"
	case FullSync:
		return "sync"
	case FullReject:
		return "reject"
	}
	return fmt.Sprintf("FullPolicy(%d)", int(p))
}

// ErrQueueFull is returned by a write when the write-behind queue is full and WhenFull is
// FullReject.
var ErrQueueFull = errors.New("writebehind: queue is full")

// Options configures a Queue. Only Store is required.
type Options[K comparable, V any] struct {
	// Store is the store of record. If it implements BatchWriter, batches go to WriteBatch.
	Store cache.Writer[K, V]
	// Delay is the longest a write waits to be coalesced and batched before its flush starts
	// (when a flusher is free). 0 means 100 ms; a negative value means no wait.
	Delay time.Duration
	// BatchSize flushes at once when this many keys wait, and caps a batch. 0 means 100.
	BatchSize int
	// Flushers is how many batches may be written at the same time. 0 means 4.
	Flushers int
	// QueueSize bounds the number of keys queued or being written. 0 means 10 000.
	QueueSize int
	// WhenFull is what a write of a new key does when QueueSize keys are queued. With FullSync
	// the write bypasses the journal: it is in the store when Write returns.
	WhenFull FullPolicy
	// Retries is how many times a failed write is retried before it goes to DeadLetter.
	// 0 means 3; a negative value means no retry.
	Retries int
	// Backoff shapes the delays between retries. Zero fields mean 100 ms initial, 10 s max,
	// doubling, no jitter; set Jitter (0.2 is a good start) when many instances flush to one store.
	Backoff Backoff
	// DeadLetter receives the writes that failed every attempt (nil: they are logged). In journal
	// mode they are acknowledged once DeadLetter returns.
	DeadLetter func(failed []FailedWrite[K, V])
	// Journal makes accepted writes durable in a Redis stream before they are acknowledged.
	Journal *Journal[K, V]
	// Hooks observe flushes.
	Hooks Hooks
	// Logger receives dead letters and journal errors; nil is silent.
	Logger *slog.Logger
}

// Backoff is the one shape of a growing delay in girder: the delay before retry n (from 0) is
// min(Max, Initial·Multiplierⁿ), reduced by up to Jitter of itself at random. Zero fields mean
// Initial 100 ms (or Max if smaller), Max 10 s, Multiplier 2, no jitter.
type Backoff = backoff.Policy

// PanicError is the error a write gets when the store panicked while applying it; the write
// is retried and dead-lettered like any other failure.
type PanicError struct {
	Value any    // what the store panicked with
	Stack []byte // the store's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("writebehind: store panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is sees through it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Hooks observe a Queue; every field is optional. Hooks run on the flusher's
// goroutine and must not block.
type Hooks struct {
	// OnFlush is called after each call to the store.
	OnFlush func(FlushInfo)
}

// FlushInfo describes one call to the store of record.
type FlushInfo struct {
	Writes  int   // writes in the call (1 for Write and Delete)
	Attempt int   // 0 the first time these writes are tried, then 1, 2, ...
	Err     error // nil on success
}

// FailedWrite is a write that was not applied to the store, and why.
type FailedWrite[K comparable, V any] struct {
	cache.Write[K, V]
	Err      error // the last error
	Attempts int   // how many times the write was tried
}

// UnwrittenError is returned by Close when its context ended before every accepted write was
// applied. With a journal the writes stay in the stream and another instance applies them.
type UnwrittenError[K comparable, V any] struct {
	Writes []cache.Write[K, V]
	Err    error // the context's error
}

// Error says how many writes were not applied.
func (e *UnwrittenError[K, V]) Error() string {
	return fmt.Sprintf("writebehind: closed with %d writes not applied: %v", len(e.Writes), e.Err)
}

// Unwrap returns the context's error.
func (e *UnwrittenError[K, V]) Unwrap() error { return e.Err }

// Validate reports every problem with o, or nil.
func (o *Options[K, V]) Validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("writebehind: Options.Store is nil"))
	}
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("writebehind: Options.BatchSize %d is negative", o.BatchSize))
	}
	if o.Flushers < 0 {
		errs = append(errs, fmt.Errorf("writebehind: Options.Flushers %d is negative", o.Flushers))
	}
	if o.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("writebehind: Options.QueueSize %d is negative", o.QueueSize))
	}
	if o.WhenFull < FullBlock || o.WhenFull > FullReject {
		errs = append(errs, fmt.Errorf("writebehind: Options.WhenFull %v is unknown", o.WhenFull))
	}
	for _, err := range o.Backoff.Check("Options.Backoff") {
		errs = append(errs, fmt.Errorf("writebehind: %w", err))
	}
	return errors.Join(errs...)
}

// New returns a running Queue in front of opts.Store.
func New[K comparable, V any](opts Options[K, V]) (*Queue[K, V], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Journal != nil && !opts.Journal.inUse.CompareAndSwap(false, true) {
		return nil, errors.New("writebehind: options: Journal is already used by another Queue")
	}
	if opts.Delay == 0 {
		opts.Delay = 100 * time.Millisecond
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 100
	}
	if opts.Flushers == 0 {
		opts.Flushers = 4
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = 10_000
	}
	retries := opts.Retries
	if retries == 0 {
		retries = 3
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wb := &Queue[K, V]{
		store:   opts.Store,
		opts:    opts,
		retry:   opts.Backoff,
		retries: max(retries, 0),
		log:     log,
		journal: opts.Journal,
		tokens:  make(chan struct{}, opts.Flushers),
		ctx:     ctx,
		cancel:  cancel,
		stop:    make(chan struct{}),
	}
	wb.batcher, _ = opts.Store.(cache.BatchWriter[K, V])
	wb.q.init(opts.QueueSize, opts.BatchSize)
	wb.wg.Add(1)
	go wb.dispatch()
	if wb.journal != nil {
		wb.appends = make(chan *wbAppend[K, V], opts.BatchSize)
		wb.started = make(chan struct{})
		wb.recoverStop = make(chan struct{})
		wb.recoverDone = make(chan struct{})
		wb.wg.Add(1)
		go wb.appendLoop()
		go wb.recoverLoop()
	}
	return wb, nil
}

// Write queues value as the new value of key. It returns once the write is queued (and, with a
// journal, durable in Redis); the store of record receives it later. With a journal, Write
// returns within ctx or the journal's Timeout, whichever ends first. An error that wraps
// ErrJournalAmbiguous (ctx or Timeout ended while the append was under way, or the connection
// broke after sending it) means the write may still be applied; a *JournalReplicaError means it
// was appended and will be applied, but is not confirmed on enough replicas; any other error
// means it will not be applied.
func (wb *Queue[K, V]) Write(ctx context.Context, key K, value V) error {
	return wb.enqueue(ctx, cache.Write[K, V]{Key: key, Value: value})
}

// Delete queues the removal of key, like Write.
func (wb *Queue[K, V]) Delete(ctx context.Context, key K) error {
	return wb.enqueue(ctx, cache.Write[K, V]{Key: key, Delete: true})
}

// Len returns how many keys are queued or being written.
func (wb *Queue[K, V]) Len() int {
	if wb == nil {
		return 0
	}
	wb.q.mu.Lock()
	defer wb.q.mu.Unlock()
	return len(wb.q.slots) + wb.q.reserved
}

func (wb *Queue[K, V]) enqueue(ctx context.Context, w cache.Write[K, V]) error {
	if wb == nil {
		return cache.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("writebehind: %w", err)
	}
	var fields []any
	if wb.journal != nil {
		f, err := wb.journal.encode(w)
		if err != nil {
			return err
		}
		fields = f
	}
	q := &wb.q
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return cache.ErrClosed
		}
		_, queued := q.slots[w.Key]
		if queued || len(q.slots)+q.reserved < q.capacity {
			break
		}
		switch wb.opts.WhenFull {
		case FullReject:
			q.mu.Unlock()
			return ErrQueueFull
		case FullSync:
			return wb.writeSync(ctx, w) // unlocks q.mu
		}
		room := q.room
		q.roomWaiting++
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			q.mu.Lock()
			q.roomWaiting--
			q.mu.Unlock()
			return fmt.Errorf("writebehind: waiting for room: %w", ctx.Err())
		}
		q.mu.Lock()
		q.roomWaiting--
	}
	if wb.journal == nil {
		q.put(w, "", q.epoch, false)
		q.mu.Unlock()
		return nil
	}
	epoch := q.reserve()
	q.mu.Unlock()
	return wb.appendJournal(ctx, &wbAppend[K, V]{w: w, fields: fields, epoch: epoch})
}

// writeSync writes w in the caller's goroutine when the queue is full (FullSync). The key holds a
// slot while it is written, so writes of the same key queued meanwhile wait for it. Called with
// q.mu held; returns with it released.
func (wb *Queue[K, V]) writeSync(ctx context.Context, w cache.Write[K, V]) error {
	s := wb.q.claimSync(w.Key)
	wb.q.mu.Unlock()
	err := wb.apply(ctx, []*wbItem[K, V]{{w: w}})
	wb.callFlushed(1, 0, err)
	wb.q.mu.Lock()
	wb.q.release(s)
	wb.q.mu.Unlock()
	if err != nil {
		return fmt.Errorf("writebehind: synchronous write (queue full): %w", err)
	}
	return nil
}

// Flush returns when every write accepted before the call has been applied to the store or
// handed to DeadLetter, or when ctx is done. It does not stop new writes.
func (wb *Queue[K, V]) Flush(ctx context.Context) error {
	if wb == nil {
		return cache.ErrClosed
	}
	wb.q.mu.Lock()
	closed := wb.q.closed
	wb.q.mu.Unlock()
	if closed {
		return cache.ErrClosed
	}
	return wb.flush(ctx)
}

func (wb *Queue[K, V]) flush(ctx context.Context) error {
	if wb.started != nil {
		// Writes recovered from the journal at start count as accepted before any Flush.
		select {
		case <-wb.started:
		case <-ctx.Done():
			return fmt.Errorf("writebehind: flush: %w", ctx.Err())
		}
	}
	done := wb.q.flushWaiter()
	if done == nil {
		return nil
	}
	wb.q.kickDispatcher()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		wb.q.dropWaiter(done)
		return fmt.Errorf("writebehind: flush: %w", ctx.Err())
	}
}

// Close stops accepting writes (they fail with ErrClosed), drains the queue and stops
// the goroutines. When ctx ends first, Close stops retrying, waits for the store calls in
// progress to return, and reports the writes that were not applied in an *UnwrittenError (with a
// journal, they stay in Redis for another instance). Close is idempotent; later calls return the
// first call's result.
func (wb *Queue[K, V]) Close(ctx context.Context) error {
	if wb == nil {
		return nil
	}
	wb.close.Do(func() { wb.closeErr = wb.shutdown(ctx) })
	return wb.closeErr
}

func (wb *Queue[K, V]) shutdown(ctx context.Context) error {
	wb.q.mu.Lock()
	wb.q.closed = true
	wb.q.wakeRoom()
	wb.q.mu.Unlock()
	wb.stopRecovery(ctx)
	err := wb.flush(ctx)
	if err != nil {
		wb.cancel()
	}
	close(wb.stop)
	wb.wg.Wait()
	wb.cancel()
	if wb.journal != nil {
		wb.journal.inUse.Store(false)
	}
	unwritten := wb.q.unwritten()
	if len(unwritten) == 0 {
		return nil
	}
	if err == nil {
		err = errors.New("writebehind: stopped with writes in flight")
	}
	return &UnwrittenError[K, V]{Writes: unwritten, Err: err}
}

// halt stops every goroutine at once, without draining or acknowledging anything, as a crash
// would. Tests use it.
func (wb *Queue[K, V]) halt() {
	wb.close.Do(func() {
		wb.cancel()
		wb.stopRecovery(context.Background())
		close(wb.stop)
		// Refuse new writes before waiting: the appender answers only those admitted until now.
		wb.q.mu.Lock()
		wb.q.closed = true
		wb.q.wakeRoom()
		wb.q.mu.Unlock()
		wb.wg.Wait()
		wb.closeErr = errors.New("writebehind: halted")
	})
}

// stopRecovery stops the journal's recovery loop; when ctx ends first, it cancels the loop's
// Redis calls.
func (wb *Queue[K, V]) stopRecovery(ctx context.Context) {
	if wb.recoverStop == nil {
		return
	}
	close(wb.recoverStop)
	select {
	case <-wb.recoverDone:
	case <-ctx.Done():
		wb.cancel()
		<-wb.recoverDone
	}
}

func (wb *Queue[K, V]) callFlushed(n, attempt int, err error) {
	if f := wb.opts.Hooks.OnFlush; f != nil {
		f(FlushInfo{Writes: n, Attempt: attempt, Err: err})
	}
}

// Compile-time check that Queue is a cache.Writer.
var _ cache.Writer[string, int] = (*Queue[string, int])(nil)
