package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Seed returns GIRDER_SEED, or a new seed; either way the test logs it, so that a failing fault
// schedule can be replayed.
func Seed(t testing.TB) (uint64, *rand.Rand) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GIRDER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("testenv: GIRDER_SEED %q: %v", s, err)
		}
		seed = v
	}
	t.Logf("GIRDER_SEED=%d", seed)
	return seed, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Soak returns GIRDER_SOAK as a duration, or short when it is not set.
func Soak(t testing.TB, short time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv("GIRDER_SOAK")
	if s == "" {
		return short
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("testenv: GIRDER_SOAK %q: %v", s, err)
	}
	return d
}

// Probe calls a function over and over from its own goroutine, as a caller of the system under
// test would, and records when it failed: what callers see through a fault.
type Probe struct {
	name   string
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	mark   time.Time // the fault, see Mark
	calls  int
	failed int
	first  time.Time // first failure after mark
	last   time.Time // last failure
	kinds  map[string]int
}

// StartProbe calls f every interval (f's own time included) until Stop.
func StartProbe(name string, interval time.Duration, f func(ctx context.Context) error) *Probe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Probe{name: name, start: time.Now(), cancel: cancel, done: make(chan struct{}), kinds: map[string]int{}}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			err := f(ctx)
			if ctx.Err() != nil {
				return
			}
			now := time.Now()
			p.mu.Lock()
			p.calls++
			if err != nil {
				p.failed++
				if p.first.IsZero() {
					p.first = now
				}
				p.last = now
				k := err.Error()
				if len(k) > 90 {
					k = k[:90] + "…"
				}
				p.kinds[k]++
			}
			p.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}()
	return p
}

// Mark records the moment of the fault; times in the result are measured from it.
func (p *Probe) Mark() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mark = time.Now()
}

// ProbeResult is what a Probe saw.
type ProbeResult struct {
	Name   string
	Calls  int
	Failed int
	// Recovered is the time from Mark to the end of the last failed call (0: no failure).
	Recovered time.Duration
	// Window is the time from the first to the last failed call.
	Window time.Duration
	// Errors counts the failures by message (cut at 90 characters).
	Errors map[string]int
}

func (r ProbeResult) String() string {
	var ks []string
	for k, n := range r.Errors {
		ks = append(ks, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(ks)
	return fmt.Sprintf("%s: %d of %d calls failed, over %v, all well again %v after the fault; %s",
		r.Name, r.Failed, r.Calls, r.Window.Round(time.Millisecond), r.Recovered.Round(time.Millisecond), strings.Join(ks, "; "))
}

// Stop stops the calls and returns what they saw.
func (p *Probe) Stop() ProbeResult {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	r := ProbeResult{Name: p.name, Calls: p.calls, Failed: p.failed, Errors: p.kinds}
	if p.failed > 0 {
		r.Window = p.last.Sub(p.first)
		mark := p.mark
		if mark.IsZero() {
			mark = p.start
		}
		r.Recovered = max(p.last.Sub(mark), 0)
	}
	return r
}
