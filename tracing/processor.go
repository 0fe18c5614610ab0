package tracing

import (
	"context"
	"errors"
	"log/slog"
	"sync"
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
