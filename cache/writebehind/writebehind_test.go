package writebehind

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wbStore is a store of record for tests: it records every call, can fail or block writes, and
// checks that no key is written by two calls at once.
type wbStore struct {
	mu       sync.Mutex
	data     map[string]int
	calls    []int                                  // size of each successful call, in order
	attempts int                                    // every call, failed or not
	fail     func(w cache.Write[string, int]) error // nil: never fails
	gate     chan struct{}                          // when set, every call waits for a receive
	inFlight map[string]bool
	overlap  bool // a key was written by two calls at once
}

func newWBStore() *wbStore {
	return &wbStore{data: map[string]int{}, inFlight: map[string]bool{}}
}

func (s *wbStore) apply(writes []cache.Write[string, int]) error {
	s.mu.Lock()
	s.attempts++
	gate := s.gate
	for _, w := range writes {
		if s.inFlight[w.Key] {
			s.overlap = true
		}
		s.inFlight[w.Key] = true
	}
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range writes {
		delete(s.inFlight, w.Key)
	}
	if s.fail != nil {
		for _, w := range writes {
			if err := s.fail(w); err != nil {
				return err
			}
		}
	}
	for _, w := range writes {
		if w.Delete {
			delete(s.data, w.Key)
		} else {
			s.data[w.Key] = w.Value
		}
	}
	s.calls = append(s.calls, len(writes))
	return nil
}

func (s *wbStore) Write(_ context.Context, k string, v int) error {
	return s.apply([]cache.Write[string, int]{{Key: k, Value: v}})
}

func (s *wbStore) Delete(_ context.Context, k string) error {
	return s.apply([]cache.Write[string, int]{{Key: k, Delete: true}})
}

func (s *wbStore) snapshot() (map[string]int, []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.data), append([]int(nil), s.calls...)
}

// wbBatchStore adds WriteBatch: all or nothing.
type wbBatchStore struct{ *wbStore }

func (s wbBatchStore) WriteBatch(_ context.Context, writes []cache.Write[string, int]) error {
	return s.apply(writes)
}

func newTestWB(t *testing.T, opts Options[string, int]) *Queue[string, int] {
	t.Helper()
	wb, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { wb.Close(context.Background()) })
	return wb
}

func TestWriteBehindCoalescesWithinDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newWBStore()
		wb := newTestWB(t, Options[string, int]{Store: wbBatchStore{s}, Delay: time.Second})
		ctx := context.Background()
		for v := range 5 {
			require.NoError(t, wb.Write(ctx, "a", v))
		}
		require.NoError(t, wb.Write(ctx, "b", 1))
		require.NoError(t, wb.Delete(ctx, "b"))
		require.NoError(t, wb.Write(ctx, "c", 7))

		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		data, calls := s.snapshot()
		assert.Empty(t, data, "nothing is written before Delay")
		assert.Empty(t, calls, "nothing is written before Delay")
		assert.Equal(t, 3, wb.Len())

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		data, calls = s.snapshot()
		assert.Equal(t, map[string]int{"a": 4, "c": 7}, data, "only the latest write of a key, deletes included")
		assert.Equal(t, []int{3}, calls, "one batch of three keys")
		assert.Equal(t, 0, wb.Len())
	})
}

func TestWriteBehindBatchesBySize(t *testing.T) {
	tests := []struct {
		name      string
		keys      int
		batchSize int
		want      []int // calls before the delay
	}{
		{"exact multiple", 6, 3, []int{3, 3}},
		{"remainder waits for the delay", 7, 3, []int{3, 3}},
		{"below batch size waits", 2, 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newWBStore()
				wb := newTestWB(t, Options[string, int]{
					Store: wbBatchStore{s}, Delay: time.Hour, BatchSize: tt.batchSize, Flushers: 1,
				})
				for i := range tt.keys {
					require.NoError(t, wb.Write(context.Background(), string(rune('a'+i)), i))
					synctest.Wait()
				}
				_, calls := s.snapshot()
				assert.Equal(t, tt.want, calls)
				require.NoError(t, wb.Flush(context.Background()))
				data, _ := s.snapshot()
				assert.Len(t, data, tt.keys, "Flush writes the rest at once")
			})
		})
	}
}

func TestWriteBehindKeepsOrderPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newWBStore()
		s.gate = make(chan struct{})
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: -1, Flushers: 4})
		ctx := context.Background()
		require.NoError(t, wb.Write(ctx, "k", 1))
		synctest.Wait() // the write of 1 is in flight, held by the gate
		require.NoError(t, wb.Write(ctx, "k", 2))
		require.NoError(t, wb.Write(ctx, "k", 3))
		require.NoError(t, wb.Write(ctx, "other", 9))
		synctest.Wait()
		close(s.gate) // let every call through, the held one first
		require.NoError(t, wb.Flush(ctx))
		data, calls := s.snapshot()
		assert.Equal(t, map[string]int{"k": 3, "other": 9}, data)
		assert.Len(t, calls, 3, "1, then 3 (2 coalesced into it), and other")
		assert.False(t, s.overlap, "a key is never written by two calls at once")
	})
}

func TestWriteBehindWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fill := func(t *testing.T, policy FullPolicy) (*Queue[string, int], *wbStore) {
			s := newWBStore()
			s.gate = make(chan struct{})
			wb := newTestWB(t, Options[string, int]{Store: s, Delay: -1, QueueSize: 2, Flushers: 1, WhenFull: policy})
			require.NoError(t, wb.Write(ctx, "a", 1))
			require.NoError(t, wb.Write(ctx, "b", 1))
			synctest.Wait()
			require.NoError(t, wb.Write(ctx, "a", 2), "a queued key coalesces even when full")
			return wb, s
		}
		release := func(s *wbStore) {
			s.mu.Lock()
			g := s.gate
			s.gate = nil
			s.mu.Unlock()
			close(g)
		}

		wb, s := fill(t, FullReject)
		assert.ErrorIs(t, wb.Write(ctx, "c", 1), ErrQueueFull)
		release(s)

		wb, s = fill(t, FullBlock)
		short, cancel := context.WithTimeout(ctx, time.Second)
		assert.ErrorIs(t, wb.Write(short, "c", 1), context.DeadlineExceeded)
		cancel()
		done := make(chan error)
		go func() { done <- wb.Write(ctx, "c", 3) }()
		synctest.Wait()
		release(s)
		require.NoError(t, <-done, "blocked write proceeds once a key leaves")
		require.NoError(t, wb.Flush(ctx))
		data, _ := s.snapshot()
		assert.Equal(t, map[string]int{"a": 2, "b": 1, "c": 3}, data)

		wb, s = fill(t, FullSync)
		go func() { done <- wb.Write(ctx, "c", 4) }()
		synctest.Wait()
		release(s) // the synchronous write waits on the store like any call
		require.NoError(t, <-done)
		data, _ = s.snapshot()
		assert.Equal(t, 4, data["c"], "written before Write returned")
	})
}

func TestWriteBehindClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := newWBStore()
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Hour})
		require.NoError(t, wb.Write(ctx, "a", 1))
		require.NoError(t, wb.Close(ctx), "Close drains without waiting for Delay")
		data, _ := s.snapshot()
		assert.Equal(t, map[string]int{"a": 1}, data)
		assert.ErrorIs(t, wb.Write(ctx, "a", 2), cache.ErrClosed)
		assert.ErrorIs(t, wb.Delete(ctx, "a"), cache.ErrClosed)
		assert.ErrorIs(t, wb.Flush(ctx), cache.ErrClosed)
		assert.NoError(t, wb.Close(ctx), "Close is idempotent")
	})
}

func TestWriteBehindCloseDeadlineReportsUnwritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := newWBStore()
		s.fail = func(cache.Write[string, int]) error { return errors.New("down") }
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: -1, Retries: 100, BatchSize: 1})
		require.NoError(t, wb.Write(ctx, "a", 1))
		require.NoError(t, wb.Write(ctx, "b", 2))
		deadline, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := wb.Close(deadline)
		var unwritten *UnwrittenError[string, int]
		require.ErrorAs(t, err, &unwritten)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ElementsMatch(t, []cache.Write[string, int]{{Key: "a", Value: 1}, {Key: "b", Value: 2}}, unwritten.Writes)
		assert.Contains(t, err.Error(), "2 writes not applied")
	})
}

func TestWriteBehindFlushWaitsOnlyForEarlierWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := newWBStore()
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Hour})
		require.NoError(t, wb.Flush(ctx), "nothing to flush")
		require.NoError(t, wb.Write(ctx, "a", 1))
		s.mu.Lock()
		s.gate = make(chan struct{})
		s.mu.Unlock()
		flushed := make(chan error)
		go func() { flushed <- wb.Flush(ctx) }()
		synctest.Wait()
		require.NoError(t, wb.Write(ctx, "b", 1)) // after the Flush: not waited for
		s.gate <- struct{}{}
		require.NoError(t, <-flushed)
		data, _ := s.snapshot()
		assert.Equal(t, map[string]int{"a": 1}, data)

		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		go func() { flushed <- wb.Flush(short) }()
		synctest.Wait()
		require.ErrorIs(t, <-flushed, context.DeadlineExceeded, "b's flush is held by the gate")
		close(s.gate)
	})
}

func TestWriteBehindOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options[string, int]
		want []string
	}{
		{"no store", Options[string, int]{}, []string{"Store is nil"}},
		{"every problem", Options[string, int]{
			BatchSize: -1, Flushers: -1, QueueSize: -1, WhenFull: 7, Backoff: Backoff{Initial: -1},
		}, []string{"Store is nil", "BatchSize -1", "Flushers -1", "QueueSize -1", "WhenFull FullPolicy(7)", "Options.Backoff.Initial -1ns is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			require.Error(t, err)
			assert.ErrorContains(t, err, "writebehind: Options.")
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}

func TestWriteBehindNilAndCanceled(t *testing.T) {
	var wb *Queue[string, int]
	ctx := context.Background()
	assert.ErrorIs(t, wb.Write(ctx, "a", 1), cache.ErrClosed)
	assert.ErrorIs(t, wb.Flush(ctx), cache.ErrClosed)
	assert.NoError(t, wb.Close(ctx))
	assert.Equal(t, 0, wb.Len())

	live := newTestWB(t, Options[string, int]{Store: newWBStore()})
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, live.Write(canceled, "a", 1), context.Canceled)
	assert.Equal(t, 0, live.Len())
	assert.Equal(t, "block", FullBlock.String())
	assert.Equal(t, "sync", FullSync.String())
	assert.Equal(t, "reject", FullReject.String())
}

func BenchmarkWriteBehindWrite(b *testing.B) {
	s := newWBStore()
	wb, err := New(Options[string, int]{Store: wbBatchStore{s}, Delay: time.Millisecond, QueueSize: 1 << 20})
	require.NoError(b, err)
	defer wb.Close(context.Background())
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		wb.Write(ctx, keys[i&1023], i)
		i++
	}
}
