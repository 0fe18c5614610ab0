package tracing

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpanQueue(t *testing.T) {
	for _, size := range []int{2, 3, 4} { // 2 and 4 find their slots by mask, 3 by division
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			q := newSpanQueue(size)
			spans := make([]*Span, size+1)
			for i := range spans {
				spans[i] = &Span{}
			}
			for i, s := range spans[:size] {
				ok, n := q.push(s)
				require.True(t, ok)
				assert.Equal(t, uint64(i+1), n)
			}
			ok, _ := q.push(spans[size])
			assert.False(t, ok, "full")
			assert.Equal(t, size, q.len())
			assert.Same(t, spans[0], q.pop())
			ok, _ = q.push(spans[size])
			assert.True(t, ok, "room again after a pop")
			for _, want := range spans[1:] {
				assert.Same(t, want, q.popWait())
			}
			assert.Nil(t, q.pop())
			assert.Nil(t, q.popWait())

			q.push(spans[0])
			q.close()
			q.close()
			ok, _ = q.push(spans[1])
			assert.False(t, ok, "closed")
			assert.Equal(t, 1, q.len())
			assert.Same(t, spans[0], q.popWait(), "what was queued before close stays")
		})
	}
}

func TestSpanQueueConcurrentProducers(t *testing.T) {
	const producers, each, size = 4, 2000, 16
	q := newSpanQueue(size)
	var wg sync.WaitGroup
	var mu sync.Mutex
	pushed := map[*Span]bool{}
	for range producers {
		wg.Go(func() {
			for range each {
				s := &Span{}
				mu.Lock()
				pushed[s] = true // before the push: the consumer may pop it at once
				mu.Unlock()
				if ok, _ := q.push(s); !ok {
					mu.Lock()
					delete(pushed, s)
					mu.Unlock()
				}
			}
		})
	}
	popped := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		for s := q.pop(); s != nil; s = q.pop() {
			popped++
			mu.Lock()
			assert.True(t, pushed[s])
			mu.Unlock()
		}
	}
	q.close()
	for s := q.popWait(); s != nil; s = q.popWait() {
		popped++
	}
	assert.Equal(t, len(pushed), popped)
}
