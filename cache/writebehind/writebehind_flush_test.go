package writebehind

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noJitter makes backoff delays exact so tests can predict them.
const noJitter = 0

func TestWriteBehindRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newWBStore()
		start := time.Now()
		var at []time.Duration
		s.fail = func(cache.Write[string, int]) error {
			at = append(at, time.Since(start))
			if len(at) <= 3 {
				return errors.New("down")
			}
			return nil
		}
		wb := newTestWB(t, Options[string, int]{
			Store: s, Delay: -1, Retries: 5,
			Backoff: Backoff{Initial: time.Second, Multiplier: 3, Max: 5 * time.Second, Jitter: noJitter},
		})
		require.NoError(t, wb.Write(context.Background(), "a", 1))
		require.NoError(t, wb.Flush(context.Background()))
		assert.Equal(t, []time.Duration{0, time.Second, 4 * time.Second, 9 * time.Second}, at,
			"retries wait 1 s, 3 s, then 5 s (capped)")
		data, _ := s.snapshot()
		assert.Equal(t, map[string]int{"a": 1}, data)
	})
}

func TestWriteBehindSplitsFailingBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newWBStore()
		poison := errors.New("constraint violated")
		s.fail = func(w cache.Write[string, int]) error {
			if w.Key == "k5" {
				return poison
			}
			return nil
		}
		var dead []FailedWrite[string, int]
		var infos []FlushInfo
		wb := newTestWB(t, Options[string, int]{
			Store: wbBatchStore{s}, Delay: time.Hour, BatchSize: 8, Flushers: 1, Retries: 2,
			Backoff:    Backoff{Jitter: noJitter},
			DeadLetter: func(f []FailedWrite[string, int]) { dead = append(dead, f...) },
			Hooks:      Hooks{OnFlush: func(i FlushInfo) { infos = append(infos, i) }},
		})
		for i := range 8 {
			require.NoError(t, wb.Write(context.Background(), fmt.Sprint("k", i), i))
		}
		synctest.Wait()
		data, calls := s.snapshot()
		assert.Len(t, data, 7, "the seven good writes are applied before any retry")
		assert.Equal(t, []int{4, 1, 2}, calls, "the parts that succeed: k0-k3, then k4, then k6-k7")
		require.NoError(t, wb.Flush(context.Background()))
		require.Len(t, dead, 1)
		assert.Equal(t, cache.Write[string, int]{Key: "k5", Value: 5}, dead[0].Write)
		assert.Equal(t, 3, dead[0].Attempts, "first try and two retries")
		assert.ErrorIs(t, dead[0].Err, poison)
		assert.Equal(t, FlushInfo{Writes: 8, Attempt: 0, Err: poison}, infos[0])
		assert.Equal(t, FlushInfo{Writes: 1, Attempt: 2, Err: poison}, infos[len(infos)-1])
	})
}

func TestWriteBehindStorePanicIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var dead []FailedWrite[string, int]
		store := cache.WriterFuncs[string, int]{
			WriteFunc:  func(context.Context, string, int) error { panic("boom") },
			DeleteFunc: func(context.Context, string) error { return nil },
		}
		wb := newTestWB(t, Options[string, int]{
			Store: store, Delay: -1, Retries: -1,
			DeadLetter: func(f []FailedWrite[string, int]) { dead = append(dead, f...); panic("hook panics too") },
		})
		require.NoError(t, wb.Write(context.Background(), "a", 1))
		require.NoError(t, wb.Delete(context.Background(), "b"))
		require.NoError(t, wb.Flush(context.Background()))
		require.Len(t, dead, 1)
		assert.Equal(t, 1, dead[0].Attempts, "Retries < 0: no retry")
		assert.ErrorContains(t, dead[0].Err, "writebehind: store panicked: boom")
		var pe *PanicError
		require.ErrorAs(t, dead[0].Err, &pe)
		assert.Equal(t, "boom", pe.Value)
		assert.Contains(t, string(pe.Stack), "writebehind_flush_test.go", "the stack is the store's")
	})
}

// faultStore fails 30 % of calls at random and records, for every write, whether any attempt
// succeeded and how many failed.
type faultStore struct {
	mu     sync.Mutex
	rng    *rand.Rand
	data   map[string]int
	failed map[cache.Write[string, int]]int
	ok     map[cache.Write[string, int]]bool
}

func (f *faultStore) do(w cache.Write[string, int]) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < 0.3 {
		f.failed[w]++
		return errors.New("random failure")
	}
	f.ok[w] = true
	if w.Delete {
		delete(f.data, w.Key)
	} else {
		f.data[w.Key] = w.Value
	}
	return nil
}

func (f *faultStore) Write(_ context.Context, k string, v int) error {
	return f.do(cache.Write[string, int]{Key: k, Value: v})
}

func (f *faultStore) Delete(_ context.Context, k string) error {
	return f.do(cache.Write[string, int]{Key: k, Delete: true})
}

func TestWriteBehindFaultsLoseNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const retries = 2
		f := &faultStore{
			rng: rand.New(rand.NewPCG(1, 2)), data: map[string]int{},
			failed: map[cache.Write[string, int]]int{}, ok: map[cache.Write[string, int]]bool{},
		}
		var mu sync.Mutex
		dead := map[cache.Write[string, int]]int{}
		wb := newTestWB(t, Options[string, int]{
			Store: f, Delay: 10 * time.Millisecond, BatchSize: 16, Retries: retries,
			Backoff: Backoff{Initial: time.Millisecond, Max: 50 * time.Millisecond},
			DeadLetter: func(fs []FailedWrite[string, int]) {
				mu.Lock()
				defer mu.Unlock()
				for _, fw := range fs {
					dead[fw.Write] = fw.Attempts
				}
			},
		})
		ctx := context.Background()
		last := map[string]cache.Write[string, int]{}
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range 3000 {
			// Values are unique so that each write is told apart; deletes are covered by the
			// property test.
			w := cache.Write[string, int]{Key: fmt.Sprint("k", rng.IntN(200)), Value: i}
			require.NoError(t, wb.Write(ctx, w.Key, w.Value))
			last[w.Key] = w
			if i%100 == 0 {
				time.Sleep(7 * time.Millisecond) // let flushes interleave with writes
			}
		}
		require.NoError(t, wb.Close(ctx))

		exhausted := map[cache.Write[string, int]]int{}
		for w, n := range f.failed {
			if !f.ok[w] {
				exhausted[w] = n
			}
		}
		assert.NotEmpty(t, exhausted, "with 30 % failures some writes must exhaust their retries")
		assert.Equal(t, exhausted, dead, "DeadLetter sees exactly the writes that failed every attempt")
		for w, n := range dead {
			assert.Equal(t, retries+1, n, "%v", w)
		}
		for k, w := range last {
			if dead[w] > 0 {
				continue // its last write is in the dead-letter hook's hands
			}
			assert.Equal(t, w.Value, f.data[k], "key %s", k)
		}
	})
}
