package lb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkLCIndex fails unless every live tree of b's index agrees with the backends' live state
// and every inner node holds the winner of its two children, so the root is a least-loaded
// member.
func checkLCIndex(t *testing.T, b *Balancer[string]) {
	t.Helper()
	b.lc.mu.Lock()
	defer b.lc.mu.Unlock()
	s := b.snap.Load()
	for _, p := range []*pool[string]{&s.primary, &s.backup} {
		if len(p.ms) == 0 {
			continue
		}
		tr := p.lc
		require.NotNil(t, tr)
		require.True(t, tr.live)
		for i, m := range p.ms {
			l := tr.leaf[i]
			require.Same(t, m.st, l.st)
			require.Same(t, tr, m.st.lcTree)
			require.Equal(t, int32(i), m.st.lcLeaf)
			load := float64(max(m.st.active.Load(), 0) + 1)
			if m.st.health.Load() != 0 {
				load = math.Inf(1)
			}
			require.Equal(t, load, l.load, "leaf %d load", i)
			require.Equal(t, float64(m.weight)*m.st.weightFactor(), l.weight, "leaf %d weight", i)
		}
		for k := tr.size - 1; k >= 1; k-- {
			require.Equal(t, tr.better(tr.node[2*k], tr.node[2*k+1]), tr.node[k], "node %d", k)
		}
		root := tr.leaf[tr.node[1]]
		for i, l := range tr.leaf {
			assert.LessOrEqual(t, root.load*l.weight, l.load*root.weight, "root costs more than member %d", i)
		}
	}
}

// setProbeDown marks a backend down or up as active health would.
func setProbeDown(t *testing.T, b *Balancer[string], name string, down bool) {
	t.Helper()
	m := b.snap.Load().byName[name]
	require.NotNil(t, m)
	bits := uint32(0)
	if down {
		bits = downProbe
	}
	b.mu.Lock()
	change, changed := b.setHealthLocked(m.st, bits, ReasonProbeFailed, nil)
	b.mu.Unlock()
	b.emit(change, changed)
}

// TestLeastConnectionsIndexMatchesScan replays random picks and Dones (and membership and
// health changes) and checks after each step that the index's pick costs no more than the
// cheapest healthy member a full scan finds.
func TestLeastConnectionsIndexMatchesScan(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		weights func(i int) int
		steps   int
	}{
		{"one backend", 1, func(int) int { return 1 }, 200},
		{"equal weights", 7, func(int) int { return 1 }, 2000},
		{"mixed weights", 13, func(i int) int { return 1 + i%4 }, 2000},
		{"power of two", 16, func(i int) int { return 1 + i%3 }, 2000},
		{"large", 100, func(i int) int { return 1 + i%7 }, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := make([]Backend[string], tt.n)
			for i := range bs {
				bs[i] = Backend[string]{Name: fmt.Sprint("b", i), Value: "v", Weight: tt.weights(i)}
			}
			b := newBalancer(t, Options[string]{Policy: LeastConnections, Backends: bs, PanicThreshold: -1})
			r := rand.New(rand.NewPCG(uint64(tt.n), 1))
			down := map[string]bool{}
			var held []Lease[string]
			for step := range tt.steps {
				switch {
				case step%500 == 250: // a membership change rebuilds the trees
					require.NoError(t, b.SetWeight("b0", 1+r.IntN(5)))
				case step%37 == 20 && tt.n > 1: // a health change takes a backend out or brings it back
					name := fmt.Sprint("b", r.IntN(tt.n))
					if down[name] || len(down) < tt.n-1 {
						setProbeDown(t, b, name, !down[name])
						down[name] = !down[name]
						if !down[name] {
							delete(down, name)
						}
					}
				case len(held) > 0 && r.IntN(3) == 0:
					k := r.IntN(len(held))
					held[k].Done(nil, time.Millisecond)
					held = append(held[:k], held[k+1:]...)
				default:
					s := b.snap.Load()
					minCost := -1.0
					for _, m := range s.primary.ms {
						if down[m.name] {
							continue
						}
						c := float64(m.st.active.Load()+1) / float64(m.weight)
						if minCost < 0 || c < minCost {
							minCost = c
						}
					}
					l, err := b.Pick()
					require.NoError(t, err)
					m := s.byName[l.Name()]
					assert.InDelta(t, minCost, float64(m.st.active.Load())/float64(m.weight), 1e-9, "step %d", step)
					held = append(held, l)
				}
				checkLCIndex(t, b)
			}
			for _, l := range held {
				l.Done(nil, 0)
			}
			checkLCIndex(t, b)
		})
	}
}

// TestLeastConnectionsIndexConcurrent picks and ends requests from several goroutines while the
// membership and slow start change; once they stop, the index must agree with the live state.
func TestLeastConnectionsIndexConcurrent(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		untracked bool
	}{
		{"tracked", 5, false},
		{"untracked", 5, true},
		{"many backends", 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := make([]Backend[string], tt.n)
			for i := range bs {
				bs[i] = Backend[string]{Name: fmt.Sprint("b", i), Value: "v", Weight: 1 + i%3}
			}
			b := newBalancer(t, Options[string]{Policy: LeastConnections, Backends: bs, UntrackedLeases: tt.untracked, SlowStart: time.Millisecond})
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					var held []Lease[string]
					for range 2000 {
						l, err := b.Pick()
						if !assert.NoError(t, err) {
							return
						}
						held = append(held, l) // goroutine g keeps g+1 requests in flight
						if len(held) > g+1 {
							held[0].Done(nil, 0)
							held = held[1:]
						}
					}
					for _, l := range held {
						l.Done(nil, 0)
					}
				})
			}
			wg.Go(func() {
				for i := range 50 {
					name := fmt.Sprint("extra", i%3)
					if b.Add(Backend[string]{Name: name, Value: "v"}) != nil {
						assert.NoError(t, b.Remove(name))
					}
				}
			})
			wg.Wait()
			checkLCIndex(t, b)
			for _, st := range b.Stats() {
				assert.Zero(t, st.Active, st.Name)
			}
		})
	}
}

// TestLeastConnectionsTiesTakeTurns: equal backends with nothing in flight are picked in turn.
func TestLeastConnectionsTiesTakeTurns(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: LeastConnections, Backends: backends("abc")})
	assert.Equal(t, "a b c a b c a", sequence(t, b, 7))
}
