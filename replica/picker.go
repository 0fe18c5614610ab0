package replica

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Candidate is a fit replica as the last check saw it, offered to a Picker.
type Candidate struct {
	Name     string
	Latency  time.Duration // how long its last check took
	LagBytes uint64        // how much less of the log it had replayed than the most advanced node
	LagTime  time.Duration // how far behind its replay was in time (0 when caught up)
}

// Picker chooses the replica for a read. Pick is called with at least one candidate and returns an
// index into it; an index out of range means the first candidate. The slice is shared: Pick must
// not modify or keep it. Pick is called concurrently and should not allocate.
type Picker interface {
	Pick(candidates []Candidate) int
}

// PickerFunc adapts a function to Picker.
type PickerFunc func(candidates []Candidate) int

// Pick calls f.
func (f PickerFunc) Pick(candidates []Candidate) int { return f(candidates) }

var (
	_ Picker = PickerFunc(nil)
	_ Picker = (*roundRobin)(nil)
)

// RoundRobin returns a Picker that takes the candidates in turn. Each call returns a new,
// independent rotation.
func RoundRobin() Picker { return &roundRobin{} }

type roundRobin struct{ n atomic.Uint64 }

func (r *roundRobin) Pick(c []Candidate) int {
	return int((r.n.Add(1) - 1) % uint64(len(c)))
}

// Random returns a Picker that chooses uniformly at random.
func Random() Picker { return PickerFunc(pickRandom) }

func pickRandom(c []Candidate) int { return rand.IntN(len(c)) }

// LeastLatency returns a Picker that chooses the candidate whose last check was fastest (the
// first of equals). Between two checks every read goes to the same replica, so prefer it when
// replicas sit at different distances rather than to spread load.
func LeastLatency() Picker { return PickerFunc(pickLeastLatency) }

func pickLeastLatency(c []Candidate) int {
	best := 0
	for i := 1; i < len(c); i++ {
		if c[i].Latency < c[best].Latency {
			best = i
		}
	}
	return best
}

// LeastLag returns a Picker that chooses the candidate with the least replication lag in bytes,
// then in time (the first of equals).
func LeastLag() Picker { return PickerFunc(pickLeastLag) }

func pickLeastLag(c []Candidate) int {
	best := 0
	for i := 1; i < len(c); i++ {
		if c[i].LagBytes < c[best].LagBytes || (c[i].LagBytes == c[best].LagBytes && c[i].LagTime < c[best].LagTime) {
			best = i
		}
	}
	return best
}

// pick runs p and keeps the result in range.
func pick(p Picker, c []Candidate) int {
	if len(c) == 1 {
		return 0
	}
	i := p.Pick(c)
	if i < 0 || i >= len(c) {
		return 0
	}
	return i
}
