package writebehind

import (
	"sync"

	"github.com/girder-go/girder/cache"
)

// wbSlot is the state of one key in the write-behind queue: at most one write waiting (pending)
// and at most one being written (busy). A write arriving while the key is busy waits as pending,
// which keeps the order per key.
type wbSlot[K comparable, V any] struct {
	key     K
	w       cache.Write[K, V] // the pending write: the latest value wins
	ids     []string          // journal entries the pending write covers
	busyIDs []string          // journal entries the write being applied covers
	epoch   uint64            // flush epoch of the oldest write the pending write covers
	pending bool
	busy    bool
}

// wbItem is one write taken from the queue by a flush.
type wbItem[K comparable, V any] struct {
	w        cache.Write[K, V]
	ids      []string
	epoch    uint64
	slot     *wbSlot[K, V]
	attempts int
	err      error
	aborted  bool // Close gave up before the write was applied
}

// wbWaiter is a Flush waiting for every write of epoch ≤ epoch.
type wbWaiter struct {
	epoch uint64
	done  chan struct{}
}

// wbQueue is the coalescing queue. Every field is guarded by mu.
//
// Flush accounting: each write, when accepted, belongs to the current epoch; Flush starts a new
// epoch and waits until no write of an older or equal epoch is outstanding. A pending write that
// absorbs later writes keeps the oldest epoch, so Flush waits for the value that superseded the
// writes it was asked about.
type wbQueue[K comparable, V any] struct {
	mu          sync.Mutex
	slots       map[K]*wbSlot[K, V]
	fifo        []*wbSlot[K, V] // pending, not busy keys in the order they became pending
	head        int
	free        []*wbSlot[K, V]
	capacity    int
	batch       int
	reserved    int // journal writes admitted but not yet appended
	epoch       uint64
	outstanding map[uint64]int // epoch → writes not yet applied or dead-lettered
	waiters     []wbWaiter
	urgent      int // Flush calls waiting: flush without waiting for Delay
	closed      bool
	room        chan struct{} // closed when a key leaves a full queue
	roomWaiting int
	kick        chan struct{}       // wakes the dispatcher
	aborted     []cache.Write[K, V] // not applied because Close gave up
}

func (q *wbQueue[K, V]) init(capacity, batch int) {
	q.slots = make(map[K]*wbSlot[K, V], min(capacity, 1024))
	q.capacity = capacity
	q.batch = batch
	q.outstanding = make(map[uint64]int)
	q.room = make(chan struct{})
	q.kick = make(chan struct{}, 1)
}

func (q *wbQueue[K, V]) kickDispatcher() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

func (q *wbQueue[K, V]) ready() int { return len(q.fifo) - q.head }

// put queues w. counted says whether w was already counted in outstanding (a journal reservation).
func (q *wbQueue[K, V]) put(w cache.Write[K, V], id string, epoch uint64, counted bool) {
	s := q.slots[w.Key]
	if s == nil {
		s = q.newSlot(w.Key)
		q.slots[w.Key] = s
	}
	switch {
	case !s.pending:
		s.pending = true
		s.epoch = epoch
		if !counted {
			q.count(epoch, 1)
		}
		if !s.busy {
			q.push(s)
		}
	case epoch < s.epoch:
		// Only a journal write reserved before the slot became pending can be older.
		q.count(s.epoch, -1)
		s.epoch = epoch
		if !counted {
			q.count(epoch, 1)
		}
	case counted:
		q.count(epoch, -1)
	}
	s.w = w
	if id != "" {
		s.ids = append(s.ids, id)
	}
}

// journalIDs adds the journal entries of every queued or busy write to set.
func (q *wbQueue[K, V]) journalIDs(set map[string]bool) {
	for _, s := range q.slots {
		for _, id := range s.ids {
			set[id] = true
		}
		for _, id := range s.busyIDs {
			set[id] = true
		}
	}
}

// reserve admits a journal write before it is appended, so that the bound holds and Flush waits
// for it.
func (q *wbQueue[K, V]) reserve() uint64 {
	q.reserved++
	q.count(q.epoch, 1)
	return q.epoch
}

// putReserved queues a write that reserve admitted.
func (q *wbQueue[K, V]) putReserved(w cache.Write[K, V], id string, epoch uint64) {
	q.reserved--
	q.put(w, id, epoch, true)
}

// unreserve gives back a reservation whose append failed.
func (q *wbQueue[K, V]) unreserve(epoch uint64) {
	q.reserved--
	q.count(epoch, -1)
	if q.roomWaiting > 0 {
		q.wakeRoom()
	}
}

func (q *wbQueue[K, V]) newSlot(key K) *wbSlot[K, V] {
	if n := len(q.free); n > 0 {
		s := q.free[n-1]
		q.free = q.free[:n-1]
		s.key = key
		return s
	}
	return &wbSlot[K, V]{key: key}
}

func (q *wbQueue[K, V]) push(s *wbSlot[K, V]) {
	q.fifo = append(q.fifo, s)
	if n := q.ready(); n == 1 || n == q.batch {
		q.kickDispatcher()
	}
}

// take moves up to n pending keys to busy and returns their writes.
func (q *wbQueue[K, V]) take(n int) []*wbItem[K, V] {
	n = min(n, q.ready())
	if n == 0 {
		return nil
	}
	items := make([]wbItem[K, V], n)
	ptrs := make([]*wbItem[K, V], n)
	for i := range items {
		s := q.fifo[q.head]
		q.fifo[q.head] = nil
		q.head++
		items[i] = wbItem[K, V]{w: s.w, ids: s.ids, epoch: s.epoch, slot: s}
		ptrs[i] = &items[i]
		var zero cache.Write[K, V]
		s.w, s.busyIDs, s.ids, s.pending, s.busy = zero, s.ids, nil, false, true
	}
	if q.head == len(q.fifo) {
		q.fifo, q.head = q.fifo[:0], 0
	}
	return ptrs
}

// done ends the flush of items.
func (q *wbQueue[K, V]) done(items []*wbItem[K, V]) {
	for _, it := range items {
		if it.aborted {
			q.aborted = append(q.aborted, it.w)
		}
		q.release(it.slot)
		q.count(it.epoch, -1)
	}
}

func (q *wbQueue[K, V]) release(s *wbSlot[K, V]) {
	s.busy, s.busyIDs = false, nil
	if s.pending {
		q.push(s)
		return
	}
	delete(q.slots, s.key)
	var zero wbSlot[K, V]
	*s = zero
	q.free = append(q.free, s)
	if q.roomWaiting > 0 {
		q.wakeRoom()
	}
}

// claimSync marks a key that is not queued as busy for a synchronous write.
func (q *wbQueue[K, V]) claimSync(key K) *wbSlot[K, V] {
	s := q.newSlot(key)
	s.busy = true
	q.slots[key] = s
	return s
}

func (q *wbQueue[K, V]) wakeRoom() {
	close(q.room)
	q.room = make(chan struct{})
}

// count adds delta to the outstanding writes of epoch and releases the Flush calls it completes.
func (q *wbQueue[K, V]) count(epoch uint64, delta int) {
	n := q.outstanding[epoch] + delta
	if n > 0 {
		q.outstanding[epoch] = n
		return
	}
	delete(q.outstanding, epoch)
	if len(q.waiters) == 0 {
		return
	}
	kept := q.waiters[:0]
	for _, w := range q.waiters {
		if q.outstandingUpTo(w.epoch) {
			kept = append(kept, w)
			continue
		}
		close(w.done)
		q.urgent--
	}
	clear(q.waiters[len(kept):])
	q.waiters = kept
}

func (q *wbQueue[K, V]) outstandingUpTo(epoch uint64) bool {
	for e := range q.outstanding {
		if e <= epoch {
			return true
		}
	}
	return false
}

// flushWaiter starts a new epoch and returns a channel closed when every write of the old ones is
// done, or nil when there is none.
func (q *wbQueue[K, V]) flushWaiter() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.epoch
	q.epoch++
	if !q.outstandingUpTo(e) {
		return nil
	}
	ch := make(chan struct{})
	q.waiters = append(q.waiters, wbWaiter{epoch: e, done: ch})
	q.urgent++
	return ch
}

// dropWaiter forgets a Flush whose context ended.
func (q *wbQueue[K, V]) dropWaiter(done <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, w := range q.waiters {
		if w.done == done {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			q.urgent--
			return
		}
	}
}

// unwritten lists what Close leaves behind: writes aborted in flight and writes still queued.
func (q *wbQueue[K, V]) unwritten() []cache.Write[K, V] {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.aborted
	for _, s := range q.slots {
		if s.pending {
			out = append(out, s.w)
		}
	}
	return out
}
