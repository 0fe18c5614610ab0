package eventbus

import (
	"slices"
	"testing"
)

// FuzzQueue drives the ring with a sequence of operations and checks it against a plain slice:
// order, the bound, eviction, growth past the bound up to the overflow limit, and the peak.
func FuzzQueue(f *testing.F) {
	f.Add(uint8(4), []byte{0, 0, 0, 0, 0, 3, 1, 1, 2, 2})
	f.Add(uint8(1), []byte{0, 1, 0, 1, 2, 3, 3, 2, 0})
	f.Add(uint8(3), []byte{2, 2, 2, 2, 2, 2, 2, 3, 0, 0, 0, 3})
	f.Fuzz(func(t *testing.T, bound uint8, ops []byte) {
		if bound == 0 {
			bound = 1
		}
		q := newQueue[int](int(bound), 1)
		var model []int
		next, peak := 0, 0
		for _, op := range ops {
			switch op % 4 {
			case 0: // bounded push
				ok, _ := q.push(item[int]{e: next}, int(bound))
				if want := len(model) < int(bound); ok != want {
					t.Fatalf("push with %d of %d queued: ok=%v", len(model), bound, ok)
				}
				if ok {
					model = append(model, next)
				}
			case 1: // overflow push, up to twice the bound
				ok, _ := q.push(item[int]{e: next}, 2*int(bound))
				if want := len(model) < 2*int(bound); ok != want {
					t.Fatalf("overflow push with %d of %d queued: ok=%v", len(model), bound, ok)
				}
				if ok {
					model = append(model, next)
				}
			case 2: // push evicting the oldest
				old, evicted, _ := q.pushEvict(item[int]{e: next})
				if len(model) >= int(bound) {
					if !evicted || old.e != model[0] {
						t.Fatalf("evicted %v %d, want %d", evicted, old.e, model[0])
					}
					model = model[1:]
				}
				model = append(model, next)
			case 3: // a worker takes up to two
				got, _ := q.next(make([]item[int], 0, 2), closedChan)
				for _, it := range got {
					if len(model) == 0 || it.e != model[0] {
						t.Fatalf("took %d, model %v", it.e, model)
					}
					model = model[1:]
				}
			}
			next++
			peak = max(peak, len(model))
			if n, p := q.depth(); n != len(model) || p != peak {
				t.Fatalf("depth %d, peak %d; model %d, %d", n, p, len(model), peak)
			}
		}
		var rest []int
		for _, it := range q.takeAll() {
			rest = append(rest, it.e)
		}
		if !slices.Equal(rest, model) {
			t.Fatalf("queue %v, model %v", rest, model)
		}
	})
}

// closedChan makes next return at once on an empty queue instead of sleeping.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
