package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Processor receives sampled spans as they end. The Tracer calls OnEnd from the goroutine that
// ended the span, so OnEnd must be quick and safe for concurrent use; the span no longer changes
// and its Snapshot does not allocate.
type Processor interface {
	OnEnd(s *Span)
	// ForceFlush exports what the processor holds and waits for it, or for ctx.
	ForceFlush(ctx context.Context) error
	// Shutdown flushes, shuts the exporter down and makes later OnEnd calls do nothing.
	Shutdown(ctx context.Context) error
}

// Exporter sends finished spans somewhere. Girder's processors never call ExportSpans
// concurrently on one exporter, and they reuse the spans slice after it returns: copy what must
// be kept. ExportSpans must honour ctx.
type Exporter interface {
	ExportSpans(ctx context.Context, spans []SpanData) error
	Shutdown(ctx context.Context) error
}

// SyncProcessor exports each span as it ends, on the goroutine that ends it. It suits tests and
// tools; services want a BatchProcessor, which keeps export latency out of requests.
type SyncProcessor struct {
	exp    Exporter
	log    *slog.Logger
	mu     sync.Mutex
	closed bool
	buf    [1]SpanData
}

var _ Processor = (*SyncProcessor)(nil)

// NewSyncProcessor returns a processor that exports every span to exp as it ends. Export errors
// go to logger (nil means silent).
func NewSyncProcessor(exp Exporter, logger *slog.Logger) (*SyncProcessor, error) {
	if exp == nil {
		return nil, errors.New("tracing: SyncProcessor needs an Exporter")
	}
	return &SyncProcessor{exp: exp, log: logger}, nil
}

// OnEnd exports s.
func (p *SyncProcessor) OnEnd(s *Span) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.buf[0] = s.Snapshot()
	err := p.exp.ExportSpans(context.Background(), p.buf[:])
	p.buf[0] = SpanData{}
	if err != nil && p.log != nil {
		p.log.Error("tracing: export failed", "spans", 1, "err", err)
	}
}

// ForceFlush does nothing: every span is exported when it ends.
func (p *SyncProcessor) ForceFlush(context.Context) error { return nil }

// Shutdown shuts the exporter down; later spans are ignored. Calls after the first return
// ErrClosed.
func (p *SyncProcessor) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	return p.exp.Shutdown(ctx)
}

// BatchOptions configure a BatchProcessor. A zero field means its default.
type BatchOptions struct {
	// MaxQueueSize bounds the spans waiting for export; spans ended while it is full are dropped
	// and counted. 0 means 2048; 1 means 2, the smallest queue.
	MaxQueueSize int
	// MaxBatchSize is the most spans in one export, and the queue length that starts an export
	// before BatchTimeout. 0 means 512; it may not exceed MaxQueueSize.
	MaxBatchSize int
	// BatchTimeout is the longest a span waits for a batch to fill. 0 means 5 s.
	BatchTimeout time.Duration
	// ExportTimeout bounds one export, retries included. 0 means 30 s.
	ExportTimeout time.Duration
	// Logger receives export errors; nil means silent.
	Logger *slog.Logger
	// OnExport, if set, is called after every export, from the processor's goroutine. With it
	// set, an export reads the clock twice more, for ExportInfo.Took.
	OnExport func(info ExportInfo)
}

// ExportInfo describes one export, for BatchOptions.OnExport.
type ExportInfo struct {
	Spans int           // spans in the batch
	Took  time.Duration // the ExportSpans call, retries included
	Err   error         // what ExportSpans returned
}

func (o *BatchOptions) withDefaults() BatchOptions {
	d := *o
	d.MaxQueueSize = orDefault(d.MaxQueueSize, 2048)
	if d.MaxQueueSize == 1 {
		d.MaxQueueSize = 2 // spanQueue's sequence numbers need two cells
	}
	d.MaxBatchSize = orDefault(d.MaxBatchSize, min(512, d.MaxQueueSize))
	if d.BatchTimeout == 0 {
		d.BatchTimeout = 5 * time.Second
	}
	if d.ExportTimeout == 0 {
		d.ExportTimeout = 30 * time.Second
	}
	return d
}

// Validate reports every problem with o, or nil.
func (o BatchOptions) Validate() error {
	var errs []error
	if o.MaxQueueSize < 0 {
		errs = append(errs, fmt.Errorf("tracing: MaxQueueSize %d is negative", o.MaxQueueSize))
	}
	if o.MaxBatchSize < 0 {
		errs = append(errs, fmt.Errorf("tracing: MaxBatchSize %d is negative", o.MaxBatchSize))
	}
	if d := o.withDefaults(); o.MaxQueueSize >= 0 && o.MaxBatchSize >= 0 && d.MaxBatchSize > d.MaxQueueSize {
		errs = append(errs, fmt.Errorf("tracing: MaxBatchSize %d exceeds MaxQueueSize %d", d.MaxBatchSize, d.MaxQueueSize))
	}
	if o.BatchTimeout < 0 {
		errs = append(errs, fmt.Errorf("tracing: BatchTimeout %v is negative", o.BatchTimeout))
	}
	if o.ExportTimeout < 0 {
		errs = append(errs, fmt.Errorf("tracing: ExportTimeout %v is negative", o.ExportTimeout))
	}
	return errors.Join(errs...)
}

// BatchProcessor queues ended spans and exports them in batches from one goroutine, so a slow or
// failing collector never delays a request. The queue is bounded: a span ended while it is full
// is dropped and counted exactly (Stats). Ending a span takes no lock.
//
// Shutdown (or Close) exports what is queued and stops the goroutine; ForceFlush exports what is
// queued and keeps going.
type BatchProcessor struct {
	opts  BatchOptions
	exp   Exporter
	queue *spanQueue
	kick  chan struct{}   // the queue reached MaxBatchSize
	flush chan flushReq   // ForceFlush requests
	stop  chan struct{}   // closed by Shutdown
	done  chan struct{}   // closed when the goroutine has exported everything and returned
	once  sync.Once       // guards stop
	ctx   context.Context // Shutdown's context, set before stop is closed

	// base parents the exports the goroutine starts by itself; it is canceled when a Shutdown
	// gives up waiting, so an export in flight stops too.
	base   context.Context
	cancel context.CancelFunc

	dropped, exported, failed atomic.Uint64
	droppedClosed, batches    atomic.Uint64
	failedBatches             atomic.Uint64
	batch                     []SpanData // the worker's buffer, reused
}

type flushReq struct {
	ctx  context.Context
	done chan error
}

var _ Processor = (*BatchProcessor)(nil)

// NewBatchProcessor starts a processor exporting to exp.
func NewBatchProcessor(exp Exporter, opts BatchOptions) (*BatchProcessor, error) {
	err := opts.Validate()
	if exp == nil {
		err = errors.Join(err, errors.New("tracing: BatchProcessor needs an Exporter"))
	}
	if err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	p := &BatchProcessor{
		opts:  o,
		exp:   exp,
		queue: newSpanQueue(o.MaxQueueSize),
		kick:  make(chan struct{}, 1),
		flush: make(chan flushReq),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		batch: make([]SpanData, 0, o.MaxBatchSize),
	}
	p.base, p.cancel = context.WithCancel(context.Background())
	go p.run()
	return p, nil
}

// OnEnd queues s, or counts it as dropped when the queue is full or the processor shut down.
func (p *BatchProcessor) OnEnd(s *Span) {
	ok, n := p.queue.push(s)
	if !ok {
		p.dropped.Add(1)
		if n == 0 { // closed; a full queue reports its size
			p.droppedClosed.Add(1)
		}
		return
	}
	if n >= uint64(p.opts.MaxBatchSize) {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// BatchStats counts what happened to the spans handed to a BatchProcessor.
type BatchStats struct {
	Dropped  uint64 // not queued: the queue was full, or the processor had shut down
	Exported uint64 // in exports that succeeded
	Failed   uint64 // in exports that returned an error
	// DroppedClosed counts the spans of Dropped that ended after Shutdown; the others found
	// the queue full.
	DroppedClosed uint64
	// Batches counts the exports (ExportSpans calls), and FailedBatches those that returned an
	// error.
	Batches, FailedBatches uint64
	// Queued is the number of spans waiting for export now.
	Queued int
}

// Stats returns the counters. Every span handed to OnEnd ends up in exactly one of Dropped,
// Exported and Failed, or is still queued. It makes a few atomic loads.
func (p *BatchProcessor) Stats() BatchStats {
	return BatchStats{
		Dropped: p.dropped.Load(), Exported: p.exported.Load(), Failed: p.failed.Load(),
		DroppedClosed: p.droppedClosed.Load(), Batches: p.batches.Load(), FailedBatches: p.failedBatches.Load(),
		Queued: p.queue.queued(),
	}
}

// Dropped returns how many spans were dropped because the queue was full or closed.
func (p *BatchProcessor) Dropped() uint64 { return p.dropped.Load() }

// ForceFlush exports every span queued before the call and waits for it, or for ctx. It returns
// ErrClosed after Shutdown, and the export error if one failed.
func (p *BatchProcessor) ForceFlush(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	req := flushReq{ctx: ctx, done: make(chan error, 1)}
	select {
	case p.flush <- req:
	case <-p.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops taking spans, exports every span queued, shuts the exporter down and waits for
// all of it, or for ctx: when ctx ends first, the export in flight is canceled, what is left is
// counted as failed, and ctx's error is returned. Calls after the first wait for the first to
// finish and return ErrClosed.
func (p *BatchProcessor) Shutdown(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	first := false
	p.once.Do(func() {
		first = true
		p.ctx = ctx
		p.queue.close()
		close(p.stop)
	})
	select {
	case <-p.done:
	case <-ctx.Done():
		p.cancel()
		return ctx.Err()
	}
	if !first {
		return ErrClosed
	}
	return p.exp.Shutdown(ctx)
}

// Close is Shutdown without a deadline.
func (p *BatchProcessor) Close() error {
	err := p.Shutdown(context.Background())
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

func (p *BatchProcessor) run() {
	defer close(p.done)
	defer p.cancel()
	timer := time.NewTimer(p.opts.BatchTimeout)
	defer timer.Stop()
	for {
		select {
		case <-p.kick:
			for p.queue.len() >= p.opts.MaxBatchSize {
				p.export(p.base, p.opts.MaxBatchSize)
			}
		case <-timer.C:
			p.export(p.base, p.queue.len())
			timer.Reset(p.opts.BatchTimeout)
		case req := <-p.flush:
			req.done <- p.drain(req.ctx)
		case <-p.stop:
			p.drain(p.ctx)
			return
		}
	}
}

// drain exports everything queued, in batches, and returns the first error.
func (p *BatchProcessor) drain(ctx context.Context) error {
	var first error
	for p.queue.len() > 0 {
		if err := p.export(ctx, p.opts.MaxBatchSize); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// export sends up to n queued spans in one call.
func (p *BatchProcessor) export(ctx context.Context, n int) error {
	batch := p.batch[:0]
	for len(batch) < n {
		s := p.queue.popWait()
		if s == nil {
			break
		}
		batch = append(batch, s.Snapshot())
	}
	if len(batch) == 0 {
		return nil
	}
	var start time.Time
	if p.opts.OnExport != nil {
		start = time.Now()
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.ExportTimeout)
	err := p.exp.ExportSpans(ctx, batch)
	cancel()
	p.batches.Add(1)
	clear(batch) // let the spans go
	if err != nil {
		p.failed.Add(uint64(len(batch)))
		p.failedBatches.Add(1)
		if p.opts.Logger != nil {
			p.opts.Logger.Error("tracing: export failed", "spans", len(batch), "err", err)
		}
	} else {
		p.exported.Add(uint64(len(batch)))
	}
	if p.opts.OnExport != nil {
		p.opts.OnExport(ExportInfo{Spans: len(batch), Took: time.Since(start), Err: err})
	}
	return err
}
