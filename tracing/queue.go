package tracing

import (
	"runtime"
	"sync/atomic"
)

// spanQueue is a bounded multi-producer, single-consumer queue of ended spans (Dmitry Vyukov's
// bounded queue): producers claim a slot with one compare-and-swap, so ending spans on many
// goroutines takes no lock. Its top bit of tail marks it closed, which lets the consumer know
// exactly which spans made it in before closing.
type spanQueue struct {
	tail  atomic.Uint64 // next position to claim; top bit set once closed
	head  atomic.Uint64 // next position to read; written by the consumer only
	cells []queueCell
	mask  uint64 // len(cells)-1 when that is a power of two (the default size is), else 0
}

type queueCell struct {
	seq  atomic.Uint64 // pos when free for position pos, pos+1 once filled
	span *Span
}

const queueClosed = 1 << 63

// newSpanQueue returns a queue of size cells; size must be at least 2, or a filled cell and a
// cell free for the next lap would carry the same sequence number.
func newSpanQueue(size int) *spanQueue {
	q := &spanQueue{cells: make([]queueCell, size)}
	if size > 1 && size&(size-1) == 0 {
		q.mask = uint64(size - 1)
	}
	for i := range q.cells {
		q.cells[i].seq.Store(uint64(i))
	}
	return q
}

// cell returns the slot of position pos: a mask where the size allows, as a 64-bit division
// costs more than the rest of a push.
func (q *spanQueue) cell(pos uint64) *queueCell {
	if q.mask != 0 {
		return &q.cells[pos&q.mask]
	}
	return &q.cells[pos%uint64(len(q.cells))]
}

// push adds s; it reports false when the queue is full or closed.
func (q *spanQueue) push(s *Span) (ok bool, length uint64) {
	size := uint64(len(q.cells))
	pos := q.tail.Load()
	for {
		if pos&queueClosed != 0 {
			return false, 0
		}
		c := q.cell(pos)
		seq := c.seq.Load()
		switch {
		case seq == pos:
			if q.tail.CompareAndSwap(pos, pos+1) {
				c.span = s
				c.seq.Store(pos + 1)
				// The consumer may already have read past this span: the length is then 0.
				return true, pos + 1 - min(q.head.Load(), pos+1)
			}
			pos = q.tail.Load()
		case seq < pos:
			return false, size // the slot still holds the span from one lap ago: full
		default:
			pos = q.tail.Load()
		}
	}
}

// pop removes the oldest span, or returns nil when none is ready. Consumer only.
func (q *spanQueue) pop() *Span {
	pos := q.head.Load()
	c := q.cell(pos)
	if c.seq.Load() != pos+1 {
		return nil
	}
	s := c.span
	c.span = nil
	c.seq.Store(pos + uint64(len(q.cells)))
	q.head.Store(pos + 1)
	return s
}

// len returns how many spans are queued or being added. Consumer only.
func (q *spanQueue) len() int {
	return int(q.tail.Load()&^queueClosed - q.head.Load())
}

// queued returns how many spans are queued or being added; unlike len, any goroutine may call
// it. head is read first: it only grows, so the tail read after it is not behind it.
func (q *spanQueue) queued() int {
	h := q.head.Load()
	return int(q.tail.Load()&^queueClosed - h)
}

// close stops further pushes. A span whose push claimed its slot before is not lost: popWait
// waits for it.
func (q *spanQueue) close() {
	for {
		t := q.tail.Load()
		if t&queueClosed != 0 || q.tail.CompareAndSwap(t, t|queueClosed) {
			return
		}
	}
}

// popWait removes the oldest span claimed before now, waiting for a producer that has claimed
// its slot but not yet stored the span (a few instructions away). It returns nil when nothing
// was claimed. Consumer only.
func (q *spanQueue) popWait() *Span {
	if q.len() == 0 {
		return nil
	}
	for {
		if s := q.pop(); s != nil {
			return s
		}
		runtime.Gosched()
	}
}
