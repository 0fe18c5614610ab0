package tracing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatedExporter records batches; while gate is non-nil each export waits for a receive from it.
type gatedExporter struct {
	mu      sync.Mutex
	batches [][]SpanData
	times   []time.Time
	gate    chan struct{}
	err     error
	spans   atomic.Int64
}

func (e *gatedExporter) ExportSpans(ctx context.Context, spans []SpanData) error {
	if e.gate != nil {
		select {
		case <-e.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.batches = append(e.batches, append([]SpanData(nil), spans...))
	e.times = append(e.times, time.Now())
	e.spans.Add(int64(len(spans)))
	return e.err
}

func (e *gatedExporter) Shutdown(context.Context) error { return nil }

func (e *gatedExporter) sizes() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n []int
	for _, b := range e.batches {
		n = append(n, len(b))
	}
	return n
}

func newBatchTracer(t *testing.T, exp Exporter, opts BatchOptions) (*Tracer, *BatchProcessor) {
	t.Helper()
	bp, err := NewBatchProcessor(exp, opts)
	require.NoError(t, err)
	tr, err := New(Options{Sampler: AlwaysSample(), Processors: []Processor{bp}})
	require.NoError(t, err)
	return tr, bp
}

func endSpans(tr *Tracer, n int) {
	for range n {
		_, s := tr.Start(context.Background(), "op")
		s.End()
	}
}

func TestBatchExportsAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exp := &gatedExporter{}
		start := time.Now()
		tr, bp := newBatchTracer(t, exp, BatchOptions{MaxBatchSize: 10, BatchTimeout: 5 * time.Second})
		endSpans(tr, 3)
		time.Sleep(5*time.Second - time.Nanosecond)
		synctest.Wait()
		assert.Empty(t, exp.sizes(), "nothing before the timeout")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, []int{3}, exp.sizes())
		assert.Equal(t, 5*time.Second, exp.times[0].Sub(start))
		require.NoError(t, bp.Close())
	})
}

func TestBatchExportsWhenBatchIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exp := &gatedExporter{}
		tr, bp := newBatchTracer(t, exp, BatchOptions{MaxBatchSize: 4, BatchTimeout: time.Hour})
		endSpans(tr, 9)
		synctest.Wait()
		assert.Equal(t, []int{4, 4}, exp.sizes(), "two full batches at once, the rest waits")
		require.NoError(t, bp.ForceFlush(context.Background()))
		assert.Equal(t, []int{4, 4, 1}, exp.sizes())
		require.NoError(t, bp.Close())
		assert.Equal(t, BatchStats{Exported: 9, Batches: 3}, bp.Stats())
	})
}

func TestBatchDropCounterIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exp := &gatedExporter{gate: make(chan struct{})}
		tr, bp := newBatchTracer(t, exp, BatchOptions{MaxQueueSize: 8, MaxBatchSize: 4, BatchTimeout: time.Hour})
		endSpans(tr, 4)
		synctest.Wait() // the worker took those 4 and waits in ExportSpans
		endSpans(tr, 8+5)
		assert.Equal(t, uint64(5), bp.Dropped(), "8 fit in the queue, 5 do not")
		close(exp.gate)
		require.NoError(t, bp.Shutdown(context.Background()))
		endSpans(tr, 2)
		assert.Equal(t, BatchStats{Dropped: 7, Exported: 12, DroppedClosed: 2, Batches: 3}, bp.Stats(), "spans after Shutdown count as dropped")
		assert.Equal(t, int64(12), exp.spans.Load())
	})
}

func TestBatchShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exp := &gatedExporter{}
		tr, bp := newBatchTracer(t, exp, BatchOptions{MaxBatchSize: 2, BatchTimeout: time.Hour})
		endSpans(tr, 5)
		require.NoError(t, tr.Shutdown(context.Background()))
		assert.Equal(t, int64(5), exp.spans.Load(), "Shutdown exports everything queued")
		require.ErrorIs(t, bp.Shutdown(context.Background()), ErrClosed)
		require.NoError(t, bp.Close(), "Close after Shutdown is fine")
		require.ErrorIs(t, bp.ForceFlush(context.Background()), ErrClosed)
	})
}

func TestBatchShutdownHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exp := &gatedExporter{gate: make(chan struct{})}
		tr, bp := newBatchTracer(t, exp, BatchOptions{MaxBatchSize: 2, BatchTimeout: time.Hour})
		endSpans(tr, 3)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		require.ErrorIs(t, bp.Shutdown(ctx), context.DeadlineExceeded)
		synctest.Wait() // the worker gives up with the canceled context and returns
		assert.Equal(t, uint64(3), bp.Stats().Failed)
	})
}

func TestBatchForceFlushHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exp := &gatedExporter{gate: make(chan struct{})}
		tr, bp := newBatchTracer(t, exp, BatchOptions{MaxBatchSize: 8, BatchTimeout: time.Hour})
		endSpans(tr, 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		require.ErrorIs(t, bp.ForceFlush(ctx), context.DeadlineExceeded)
		close(exp.gate)
		require.NoError(t, bp.Close())
	})
}

func TestBatchReportsExportErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		exp := &gatedExporter{err: boom}
		var seen []error
		tr, bp := newBatchTracer(t, exp, BatchOptions{MaxBatchSize: 2, BatchTimeout: time.Hour,
			OnExport: func(info ExportInfo) { seen = append(seen, info.Err) }})
		endSpans(tr, 2)
		synctest.Wait()
		require.ErrorIs(t, bp.ForceFlush(context.Background()), nil)
		endSpans(tr, 1)
		require.ErrorIs(t, bp.ForceFlush(context.Background()), boom)
		require.NoError(t, bp.Close())
		assert.Equal(t, []error{boom, boom}, seen)
		assert.Equal(t, BatchStats{Failed: 3, Batches: 2, FailedBatches: 2}, bp.Stats())
	})
}

func TestBatchOverloadAccountsForEverySpan(t *testing.T) {
	exp := &gatedExporter{}
	tr, bp := newBatchTracer(t, exp, BatchOptions{MaxQueueSize: 64, MaxBatchSize: 16, BatchTimeout: time.Millisecond})
	const goroutines, each = 4, 3000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() { endSpans(tr, each) })
	}
	wg.Wait()
	require.NoError(t, bp.Close())
	st := bp.Stats()
	assert.Equal(t, uint64(goroutines*each), st.Dropped+st.Exported)
	assert.Equal(t, int64(st.Exported), exp.spans.Load())
	assert.Zero(t, st.Failed)
}

func TestBatchOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts BatchOptions
		want []string
	}{
		{"zero is fine", BatchOptions{}, nil},
		{"small queue lowers the default batch", BatchOptions{MaxQueueSize: 10}, nil},
		{"negatives", BatchOptions{MaxQueueSize: -1, MaxBatchSize: -1, BatchTimeout: -1, ExportTimeout: -1},
			[]string{"MaxQueueSize", "MaxBatchSize", "BatchTimeout", "ExportTimeout"}},
		{"batch over queue", BatchOptions{MaxQueueSize: 4, MaxBatchSize: 5}, []string{"exceeds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
	_, err := NewBatchProcessor(nil, BatchOptions{})
	require.ErrorContains(t, err, "Exporter")
}

func TestSyncProcessor(t *testing.T) {
	exp := &gatedExporter{}
	sp, err := NewSyncProcessor(exp, nil)
	require.NoError(t, err)
	tr, err := New(Options{Processors: []Processor{sp}})
	require.NoError(t, err)
	endSpans(tr, 2)
	assert.Equal(t, []int{1, 1}, exp.sizes(), "one export per span, at once")
	require.NoError(t, sp.ForceFlush(context.Background()))
	require.NoError(t, sp.Shutdown(context.Background()))
	require.ErrorIs(t, sp.Shutdown(context.Background()), ErrClosed)
	_, s := tr.Start(context.Background(), "late")
	s.End()
	assert.Equal(t, []int{1, 1}, exp.sizes(), "nothing after Shutdown")
}

func TestSyncProcessorLogsErrors(t *testing.T) {
	var logs bytes.Buffer
	sp, err := NewSyncProcessor(&gatedExporter{err: errors.New("collector down")}, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	tr, err := New(Options{Processors: []Processor{sp}})
	require.NoError(t, err)
	endSpans(tr, 1)
	assert.Contains(t, logs.String(), "collector down")

	_, err = NewSyncProcessor(nil, nil)
	require.Error(t, err)
}

func TestBatchQueueOfOneHoldsTwo(t *testing.T) {
	exp := &InMemoryExporter{}
	tr, bp := newBatchTracer(t, exp, BatchOptions{MaxQueueSize: 1, BatchTimeout: time.Hour})
	endSpans(tr, 50)
	require.NoError(t, tr.Shutdown(context.Background()))
	st := bp.Stats()
	assert.Equal(t, uint64(50), st.Exported+st.Dropped, "every span is accounted for")
	assert.Len(t, exp.Spans(), int(st.Exported))
	assert.NotZero(t, st.Exported)
}
