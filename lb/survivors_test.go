package lb

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// outWays are the ways a backend leaves rotation: passive ejection through reported failures,
// a failed health check, and removal.
var outWays = []struct {
	name string
	out  func(t *testing.T, b *Balancer[string], name string)
}{
	{"ejected", func(t *testing.T, b *Balancer[string], name string) {
		for range defaultMaxFails {
			hold(t, b, name).Done(errBackend, time.Millisecond)
		}
		require.True(t, statsOf(b, name).Ejected, "%s ejected", name)
	}},
	{"probe down", func(t *testing.T, b *Balancer[string], name string) { eject(t, b, name) }},
	{"removed", func(t *testing.T, b *Balancer[string], name string) { require.NoError(t, b.Remove(name)) }},
}

func statsOf(b *Balancer[string], name string) Stats {
	for _, s := range b.Stats() {
		if s.Name == name {
			return s
		}
	}
	return Stats{}
}

// TestContractSurvivorsShareEvenly: with one of three backends out, whichever way it went, every
// policy spreads the picks over the two survivors evenly (RoundRobin) or in proportion to their
// weights (the others), whether requests end at once or several stay in flight.
// ConsistentHash promises something else, checked by TestContractHashSurvivorsKeepTheirKeys.
func TestContractSurvivorsShareEvenly(t *testing.T) {
	const picks = contractPicks
	tests := []struct {
		name     string
		weights  []int
		inFlight int // leases held at once; each pick ends the oldest beyond this
	}{
		{"equal, done at once", []int{1, 1, 1}, 0},
		{"equal, 12 in flight", []int{1, 1, 1}, 12},
		{"weights 1 2 3, 30 in flight", []int{1, 2, 3}, 30},
	}
	for _, p := range Policies() {
		if p == ConsistentHash {
			continue
		}
		for _, tt := range tests {
			for _, way := range outWays {
				t.Run(fmt.Sprintf("%v/%s/%s", p, tt.name, way.name), func(t *testing.T) {
					b := newBalancer(t, Options[string]{Policy: p, Backends: backends("abc", tt.weights...), Seed: 7})
					way.out(t, b, "b")
					counts := map[string]int{}
					var held []Lease[string]
					for range picks {
						l, err := b.Pick()
						require.NoError(t, err)
						counts[l.Name()]++
						held = append(held, l)
						if len(held) > tt.inFlight {
							held[0].Done(nil, time.Millisecond)
							held = held[1:]
						}
					}
					for _, l := range held {
						l.Done(nil, time.Millisecond)
					}
					wa, wc := float64(tt.weights[0]), float64(tt.weights[2])
					if p == RoundRobin {
						wa, wc = 1, 1
					}
					t.Logf("a %d, b %d, c %d of %d picks", counts["a"], counts["b"], counts["c"], picks)
					assert.Zero(t, counts["b"], "the backend that is out")
					assert.InDelta(t, wa/(wa+wc), float64(counts["a"])/picks, 0.03, "a's share: a %d, c %d", counts["a"], counts["c"])
				})
			}
		}
	}
}

// TestContractHashSurvivorsKeepTheirKeys states what ConsistentHash promises when one of three
// backends is out: the survivors keep their own keys, and the keys of the one that is out spread
// over the survivors in proportion to their weights.
func TestContractHashSurvivorsKeepTheirKeys(t *testing.T) {
	const keys = 6000
	for _, weights := range [][]int{{1, 1, 1}, {1, 2, 3}} {
		for _, way := range outWays {
			t.Run(fmt.Sprintf("%v/%s", weights, way.name), func(t *testing.T) {
				b := newBalancer(t, Options[string]{Policy: ConsistentHash, Backends: backends("abc", weights...)})
				owner := make([]string, keys)
				for i := range owner {
					owner[i] = pickKeyOne(t, b, fmt.Sprint("k", i))
				}
				way.out(t, b, "b")
				moved := map[string]int{}
				for i, was := range owner {
					now := pickKeyOne(t, b, fmt.Sprint("k", i))
					if was != "b" {
						require.Equal(t, was, now, "key k%d moved between survivors", i)
						continue
					}
					moved[now]++
				}
				wa, wc := float64(weights[0]), float64(weights[2])
				total := moved["a"] + moved["c"]
				t.Logf("b's %d keys went to a %d, c %d", total, moved["a"], moved["c"])
				require.Positive(t, total)
				assert.InDelta(t, wa/(wa+wc), float64(moved["a"])/float64(total), 0.05)
			})
		}
	}
}

func pickKeyOne(t testing.TB, b *Balancer[string], key string) string {
	t.Helper()
	l, err := b.PickKey(key)
	require.NoError(t, err)
	l.Done(nil, time.Millisecond)
	return l.Name()
}

// randomErrorRun drives a balancer of n backends at rate picks per second of fake time for the
// given duration, failing each request with probability errRate, and returns how many picks
// failed with ErrNoBackend and the most backends passive health had out at once.
func randomErrorRun(t *testing.T, opts Options[string], seed uint64, errRate float64, d time.Duration) (noBackend, picks, maxEjected int) {
	t.Helper()
	const step = 10 * time.Millisecond
	const perStep = 20 // 2,000 picks per second
	rng := rand.New(rand.NewPCG(seed, 1))
	ejected := 0
	var mu sync.Mutex
	opts.Hooks.OnHealthChange = func(c HealthChangeInfo) {
		mu.Lock()
		defer mu.Unlock()
		switch c.Reason {
		case ReasonFailures:
			ejected++
		case ReasonEjectExpiry:
			ejected--
		}
		maxEjected = max(maxEjected, ejected)
	}
	b := newBalancer(t, opts)
	for range d / step {
		for i := range perStep {
			picks++
			l, err := b.PickKey(fmt.Sprint("k", i))
			if errors.Is(err, ErrNoBackend) {
				noBackend++
				continue
			}
			require.NoError(t, err)
			var outcome error
			if rng.Float64() < errRate {
				outcome = errBackend
			}
			l.Done(outcome, time.Millisecond)
		}
		time.Sleep(step)
	}
	b.Close()
	mu.Lock()
	defer mu.Unlock()
	return noBackend, picks, maxEjected
}

// TestContractRandomErrorsKeepService: a few random errors (1 %, passive health at its
// defaults) never leave a policy without a backend: ejection stops at its cap, and the picks all
// find a backend. It runs errorRunFor of fake time per policy, or GIRDER_SOAK (say 10m).
func TestContractRandomErrorsKeepService(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	d := errorRunFor
	if soak := os.Getenv("GIRDER_SOAK"); soak != "" {
		var err error
		d, err = time.ParseDuration(soak)
		require.NoError(t, err, "GIRDER_SOAK")
	}
	for _, p := range Policies() {
		t.Run(p.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				noBackend, picks, maxEjected := randomErrorRun(t, Options[string]{Policy: p, Backends: backends("abc")},
					seed, 0.01, d)
				t.Logf("%d of %d picks failed with ErrNoBackend; at most %d of 3 ejected at once", noBackend, picks, maxEjected)
				assert.Zero(t, noBackend, "picks failed with ErrNoBackend (seed %d)", seed)
				assert.LessOrEqual(t, maxEjected, 1, "ejected at once (seed %d)", seed)
			})
		})
	}
}
