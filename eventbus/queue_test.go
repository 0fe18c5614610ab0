package eventbus

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func items(q *queue[int]) []int {
	var out []int
	for _, it := range q.takeAll() {
		out = append(out, it.e)
	}
	return out
}

func TestQueueRing(t *testing.T) {
	tests := []struct {
		name string
		ops  func(q *queue[int])
		want []int
	}{
		{"fifo", func(q *queue[int]) {
			for i := range 3 {
				q.push(item[int]{e: i}, q.bound)
			}
		}, []int{0, 1, 2}},
		{"bound holds", func(q *queue[int]) {
			for i := range 5 {
				q.push(item[int]{e: i}, q.bound)
			}
		}, []int{0, 1, 2, 3}},
		{"evict wraps around", func(q *queue[int]) {
			for i := range 7 {
				q.pushEvict(item[int]{e: i})
			}
		}, []int{3, 4, 5, 6}},
		{"overflow grows in order", func(q *queue[int]) {
			for i := range 3 {
				q.pushEvict(item[int]{e: i})
			}
			q.next(make([]item[int], 0, 2), nil) // head moves: the ring wraps when it grows
			for i := 3; i < 10; i++ {
				q.push(item[int]{e: i}, 2*q.bound)
			}
		}, []int{2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue[int](4, 1)
			tt.ops(q)
			assert.Equal(t, tt.want, items(q))
		})
	}
}

func TestQueueClosed(t *testing.T) {
	q := newQueue[int](2, 1)
	q.push(item[int]{e: 1}, q.bound)
	q.close()
	q.close()
	ok, closed := q.push(item[int]{e: 2}, 2*q.bound)
	assert.False(t, ok)
	assert.True(t, closed)
	_, _, closed = q.pushEvict(item[int]{e: 3})
	assert.True(t, closed)
	got, more := q.next(make([]item[int], 0, 4), nil)
	require.True(t, more, "a closed queue still hands out what it holds")
	assert.Len(t, got, 1)
	_, more = q.next(got[:0], nil)
	assert.False(t, more)
}

func TestQueueWaitRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue[int](1, 1)
		q.push(item[int]{e: 1}, q.bound)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		assert.ErrorIs(t, q.waitRoom(ctx, nil), context.DeadlineExceeded)

		done := make(chan error, 1)
		go func() { done <- q.waitRoom(context.Background(), nil) }()
		synctest.Wait()
		q.next(make([]item[int], 0, 1), nil)
		assert.NoError(t, <-done)
	})
}

func TestQueueWorkerSleepsAndWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue[int](4, 1)
		abort := make(chan struct{})
		got := make(chan []item[int], 1)
		go func() {
			b, _ := q.next(make([]item[int], 0, 4), abort)
			got <- b
		}()
		synctest.Wait()
		q.push(item[int]{e: 9}, q.bound)
		assert.Equal(t, 9, (<-got)[0].e)

		go func() {
			_, ok := q.next(make([]item[int], 0, 4), abort)
			assert.False(t, ok)
			got <- nil
		}()
		synctest.Wait()
		close(abort)
		<-got
	})
}
