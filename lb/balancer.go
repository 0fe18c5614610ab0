package lb

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrNoBackend is returned by a pick when no backend is usable: there are none, or every one
	// is down, unavailable or already tried.
	ErrNoBackend = errors.New("lb: no backend available")
	// ErrClosed is returned by a pick or a membership change after Close.
	ErrClosed = errors.New("lb: balancer closed")
	// ErrDuplicate is returned when a backend's name is already taken.
	ErrDuplicate = errors.New("lb: duplicate backend name")
	// ErrUnknownBackend is returned when no backend has the given name.
	ErrUnknownBackend = errors.New("lb: unknown backend")
	// ErrKeyRequired is returned by Pick and Do under ConsistentHash, which places requests by
	// key: use PickKey or DoKey.
	ErrKeyRequired = errors.New("lb: ConsistentHash needs a key: use PickKey or DoKey")
)

// Balancer spreads requests over backends of type T according to a Policy, keeping unhealthy
// backends out of rotation. Picks read an immutable snapshot of the membership through an
// atomic pointer and take no lock; membership changes and health transitions copy and swap.
// A Balancer is safe for concurrent use. Close stops its timers and its prober.
type Balancer[T any] struct {
	set      settings[T]
	snap     atomic.Pointer[snapshot[T]]
	healthy  atomic.Uint64 // allHealthy | healthy primaries << 32 | healthy backups
	rr       atomic.Uint64 // next round-robin position
	seq      atomic.Uint64 // state of the seeded random sequence
	seen     atomic.Uint64 // responses observed, the clock of peak-EWMA decay
	leases   sync.Pool     // *handle
	lc       *lcIndex      // LeastConnections only
	sink     *leakSink
	retry    *budget // nil when Options.RetryBudget disables it
	hedge    hedger
	counters retryCounters

	mu     sync.Mutex // serialises membership changes, health transitions and Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the prober and every pending timer callback
}

// New returns a balancer over opts.Backends. It starts the active health checker when
// opts.Active.Probe is set; call Close to stop it. Every problem with opts is reported at once.
func New[T any](opts Options[T]) (*Balancer[T], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	b := &Balancer[T]{set: opts.settings()}
	b.seq.Store(opts.Seed)
	b.retry = newBudget(opts.RetryBudget, defaultBudgetRatio, defaultBudgetMinRPS)
	b.hedge = newHedger(opts.Hedge)
	b.sink = &leakSink{onLeak: opts.Hooks.OnLeak, logger: opts.Logger}
	b.leases.New = b.newHandle
	if b.set.policy == LeastConnections {
		b.lc = &lcIndex{}
	}
	all := make([]*member[T], 0, len(opts.Backends))
	for _, be := range opts.Backends {
		all = append(all, b.newMember(be, b.newState(be.Name)))
	}
	b.mu.Lock()
	b.publishLocked(all)
	b.mu.Unlock()
	if b.set.probe != nil {
		ctx, cancel := context.WithCancel(context.Background())
		b.cancel = cancel
		b.wg.Add(1)
		go b.probeLoop(ctx)
	}
	return b, nil
}

// Pick chooses a backend. Call Done on the returned lease when the request ends, whatever its
// outcome. Under ConsistentHash it returns ErrKeyRequired: use PickKey.
func (b *Balancer[T]) Pick() (Lease[T], error) {
	if b != nil && b.set.policy == ConsistentHash {
		return Lease[T]{}, ErrKeyRequired
	}
	return b.pick("", false, nil)
}

// PickKey chooses a backend for key. Only ConsistentHash uses the key; the other policies
// behave as Pick.
func (b *Balancer[T]) PickKey(key string) (Lease[T], error) { return b.pick(key, true, nil) }

func (b *Balancer[T]) pick(key string, hasKey bool, tried []*state) (Lease[T], error) {
	if b == nil {
		return Lease[T]{}, ErrNoBackend
	}
	s := b.snap.Load()
	if s.closed {
		return Lease[T]{}, ErrClosed
	}
	m, counted := b.choose(s, key, hasKey, tried)
	if m == nil {
		return Lease[T]{}, ErrNoBackend
	}
	if !counted {
		m.st.acquire()
	}
	return b.lease(m), nil
}

// choose applies the health rules around the policy: healthy primaries; every primary when too
// few are healthy (panic mode); backups when no primary is usable; and when no backend at all
// is healthy, every backend (panic mode again, primaries first) unless Options.FailClosed.
// counted says the policy already counted the request in flight (see choosePool).
func (b *Balancer[T]) choose(s *snapshot[T], key string, hasKey bool, tried []*state) (m *member[T], counted bool) {
	h := b.healthy.Load()
	hp, hb, up := (h&^allHealthy)>>32, uint32(h), h&allHealthy != 0
	if hp > 0 {
		panicking := !up && float64(hp) < b.set.panicAt*float64(len(s.primary.ms))
		if m, counted := b.choosePool(&s.primary, panicking, up, key, hasKey, tried); m != nil {
			return m, counted
		}
	}
	if hb > 0 {
		return b.choosePool(&s.backup, false, up, key, hasKey, tried)
	}
	if hp == 0 && b.set.panicZero {
		if m, counted := b.choosePool(&s.primary, true, false, key, hasKey, tried); m != nil {
			return m, counted
		}
		return b.choosePool(&s.backup, true, false, key, hasKey, tried)
	}
	return nil, false
}

// Close stops the active health checker and every pending timer, and waits for them; it cannot
// fail, and a probe in flight has its ctx canceled, so it does not wait longer than a canceled
// probe. It does not wait for leases: those already handed out may still call Done. Picks and
// membership changes fail with ErrClosed afterwards. Close is idempotent.
func (b *Balancer[T]) Close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	s := b.snap.Load()
	if !s.closed {
		closed := *s
		closed.closed = true
		b.snap.Store(&closed)
		for _, m := range s.all {
			b.stopTimersLocked(m.st)
		}
	}
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	b.wg.Wait()
}

// Stats is a backend's state as Balancer.Stats reports it. A backend takes picks when it is
// Healthy and Available (or, Available, in panic mode); Ejected, ProbeDown and Available say
// which check keeps it out when it does not.
type Stats struct {
	Name      string
	Backup    bool
	Weight    int
	Healthy   bool // neither Ejected nor ProbeDown
	Ejected   bool // passive health: MaxFails failures within Window, out until EjectFor passes
	ProbeDown bool // active health: FailAfter consecutive probes failed, out until PassAfter pass
	// Available is the backend's availability check (Backend.Check, a circuit breaker say) as
	// Stats asked it; true when it has none.
	Available  bool
	Active     int64         // requests in flight
	Latency    time.Duration // peak-EWMA latency (P2CPeakEWMA only; decayed to now)
	SlowFactor float64       // share of its weight a slow-starting backend gets; 1 otherwise
}

// Stats returns every backend's state, in the order the backends were added.
func (b *Balancer[T]) Stats() []Stats {
	if b == nil {
		return nil
	}
	s := b.snap.Load()
	seen := b.seen.Load()
	out := make([]Stats, 0, len(s.all))
	for _, m := range s.all {
		h := m.st.health.Load()
		out = append(out, Stats{
			Name: m.name, Backup: m.backup, Weight: m.weight, Healthy: h == 0,
			Ejected: h&downEjected != 0, ProbeDown: h&downProbe != 0, Available: m.check == nil || m.check.Available(),
			Active: m.st.active.Load(), Latency: time.Duration(b.decayed(m.st, seen, s.aging)),
			SlowFactor: m.st.weightFactor(),
		})
	}
	return out
}

// Len returns the number of backends, primary and backup.
func (b *Balancer[T]) Len() int {
	if b == nil {
		return 0
	}
	return len(b.snap.Load().all)
}

// random returns 64 random bits: math/rand/v2's per-thread source, or with Options.Seed a
// deterministic splitmix64 sequence. (The runtime's cheaper wyrand is reachable only through a
// linkname directive, which a library should not depend on.)
func (b *Balancer[T]) random() uint64 {
	if b.set.seeded {
		return mix64(b.seq.Add(0x9e3779b97f4a7c15))
	}
	return rand.Uint64()
}

// below returns a uniform index in [0, n) from 32 random bits, without a division.
func below(r uint64, n int) int { return int((r & math.MaxUint32) * uint64(n) >> 32) }
