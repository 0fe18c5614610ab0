package lb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Policy chooses which backend a pick returns.
type Policy uint8

const (
	// RoundRobin takes the backends in turn, ignoring weights. It is the zero value.
	RoundRobin Policy = iota
	// WeightedRoundRobin is nginx's smooth weighted round robin: weights {5, 1, 1} give the order
	// a a b a c a a, never a burst of one backend longer than its weight requires.
	WeightedRoundRobin
	// Random picks uniformly at random, or in proportion to the weights when they differ.
	Random
	// LeastConnections takes the backend with the fewest requests in flight per unit of weight
	// (nginx least_conn), the one picked least recently on a tie. Exact: an index under a mutex
	// finds it in O(log n) per pick and Done; with panic mode, availability checks or a retry
	// in play the pick scans, O(n).
	LeastConnections
	// P2CLeastRequest draws two backends at random and takes the one with fewer requests in
	// flight per unit of weight (Envoy's LEAST_REQUEST). O(1) per pick.
	P2CLeastRequest
	// P2CPeakEWMA draws two backends at random and takes the one with the lower
	// latency × (requests in flight + 1), latency being a peak-sensitive moving average
	// (Finagle, Linkerd). It steers away from slow backends as well as from busy ones.
	P2CPeakEWMA
	// ConsistentHash sends each key to the backend that Options.Placement names (or, without a
	// placement, that a built-in hash ring assigns), so a session sticks to one backend while
	// that backend is usable.
	ConsistentHash

	numPolicies
)

var policyNames = [...]string{"round-robin", "weighted-round-robin", "random", "least-connections",
	"p2c-least-request", "p2c-peak-ewma", "consistent-hash"}

// String returns the policy's name, such as "p2c-peak-ewma".
func (p Policy) String() string {
	if p < numPolicies {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", p)
}

// Policies lists every policy, in declaration order.
func Policies() []Policy {
	ps := make([]Policy, numPolicies)
	for i := range ps {
		ps[i] = Policy(i)
	}
	return ps
}

// Availability is an optional per-backend check consulted on every pick: a backend whose
// Available returns false is skipped as if it were down. A circuit breaker with an
// Available() bool method plugs in here. Available must be cheap and safe for concurrent use.
type Availability interface {
	Available() bool
}

// AvailabilityFunc adapts a function to Availability.
type AvailabilityFunc func() bool

// Available calls f.
func (f AvailabilityFunc) Available() bool { return f() }

// Backend describes one member of a balancer.
type Backend[T any] struct {
	// Name identifies the backend in membership changes, hooks, Stats and hash placement.
	// Required and unique within a balancer.
	Name string
	// Value is what a pick hands back: an address, a client, a *url.URL.
	Value T
	// Weight is the backend's share relative to the others for WeightedRoundRobin, Random,
	// the least-request policies and rendezvous hashing; 0 means 1. RoundRobin ignores it.
	Weight int
	// Backup marks a backend that receives traffic only when no primary backend is usable.
	Backup bool
	// Check, when set, is consulted on every pick (see Availability). When nil and Value itself
	// has an Available() bool method, that method is used.
	Check Availability
}

// MaxWeight is the largest weight a backend may have.
const MaxWeight = 1 << 16

// Passive configures passive health checking from the outcomes callers report through
// Lease.Done: MaxFails failures within Window take a backend out for EjectFor (nginx's
// max_fails and fail_timeout), as long as no more than MaxEjected of the backends are out
// for it at once (Envoy's max_ejection_percent).
type Passive struct {
	MaxFails int           // failures that eject; 0 means 5; negative disables passive checking
	Window   time.Duration // span in which the failures must fall; 0 means 10 s
	EjectFor time.Duration // how long an ejected backend stays out; 0 means 10 s
	// MaxEjected is the largest fraction of the backends (primary and backup) that passive
	// health keeps out at once; 0 means 0.5. At least one backend may be ejected whatever the
	// fraction, and below 1 at least one is always kept: a balancer of one backend never
	// ejects it. 1 lets every backend be ejected. A backend that reaches MaxFails while the cap
	// is reached stays in rotation and starts counting again. Active health is not capped.
	MaxEjected float64
}

// Prober probes one backend for active health checking. A nil error means healthy.
type Prober[T any] interface {
	Probe(ctx context.Context, backend T) error
}

// ProberFunc adapts a function to Prober.
type ProberFunc[T any] func(ctx context.Context, backend T) error

// Probe calls f.
func (f ProberFunc[T]) Probe(ctx context.Context, backend T) error { return f(ctx, backend) }

// Active configures active health checking: every Interval each backend is probed, FailAfter
// consecutive failed probes take it out and PassAfter consecutive passed probes bring it back.
// Backends start healthy; the first round runs as New returns. The checks run in one goroutine
// (up to 16 probes of a round at once) until Close. A probe that panics counts as failed, with
// a *PanicError.
type Active[T any] struct {
	Probe     Prober[T]     // nil disables active checking
	Interval  time.Duration // time between rounds; 0 means 10 s
	Timeout   time.Duration // deadline of one probe; 0 means Interval / 2
	FailAfter int           // consecutive failures that take a backend out; 0 means 1
	PassAfter int           // consecutive successes that bring it back; 0 means 1
}

// Options configures a Balancer. The zero value is a round-robin balancer with no backends,
// passive health checking at its defaults and a panic threshold of 50 %.
type Options[T any] struct {
	// Policy chooses the backend of each pick; the zero value is RoundRobin.
	Policy Policy
	// Backends are the initial members; more can be added later.
	Backends []Backend[T]
	// Placement maps a key to the name of the backend that owns it, for ConsistentHash: pass the
	// lookup of a consistent-hash ring, jump hash or Maglev table built over the same names.
	// When nil, a built-in ring (256 points per unit of weight, keys hashed with FNV-1a)
	// decides.
	// When the owner is unknown or unusable, rendezvous hashing over the usable backends picks
	// a stand-in, the same one for the same key, until the owner is back.
	Placement func(key string) string
	// PanicThreshold is the fraction of healthy primary backends below which the balancer stops
	// trusting health and spreads traffic over every primary backend rather than overload the
	// few that are left (Envoy's panic mode). With no healthy backend at all, primary or backup,
	// it spreads over every backend, primaries first (Envoy does the same). Availability checks
	// still apply in panic mode. 0 means 0.5; negative disables panic mode, and picks fail with
	// ErrNoBackend when nothing is healthy.
	PanicThreshold float64
	// FailClosed makes picks fail with ErrNoBackend when no backend is healthy, rather than
	// spread over all of them in panic mode. Panic mode with some healthy backends is unchanged.
	FailClosed bool
	// Passive configures ejection after reported failures.
	Passive Passive
	// Active configures probing; off unless Active.Probe is set.
	Active Active[T]
	// SlowStart, when positive, ramps a backend that comes back (or is added after New) from a
	// tenth of its weight to all of it over this duration.
	SlowStart time.Duration
	// DecayResponses is how many responses per backend the peak-EWMA latency estimate
	// remembers, on average; 0 means 20. Age is counted in responses observed by the whole
	// balancer, so no clock is read per request.
	DecayResponses int
	// IsFailure decides which errors passed to Lease.Done count against a backend's health;
	// nil means every error except context.Canceled.
	IsFailure func(error) bool
	// Seed, when non-zero, makes the random choices (Random, the P2C policies) a deterministic
	// sequence, for simulations and tests. Zero uses the runtime's fast random source.
	Seed uint64
	// UntrackedLeases trades the lease safety net for speed: a Lease becomes a plain value, with
	// no reusable handle behind it, which saves a compare-and-swap and a sync.Pool round trip
	// per pick. Done must then be called
	// exactly once per lease: a lease dropped without Done stays in flight for good, and a
	// second Done releases the count twice. Do and NewProxy end every lease exactly once, so
	// code that only uses them loses nothing by setting it.
	UntrackedLeases bool
	// RetryBudget bounds the retries of Do, DoCall and NewProxy across all requests; the zero
	// value is on, at 20 % of the requests plus 10 per second over 10 s (see RetryBudget).
	RetryBudget RetryBudget
	// Hedge configures hedged requests for DoCall and NewProxy; the zero value is off.
	Hedge Hedge
	// Hooks observe health changes, leaked leases, retries and hedges.
	Hooks Hooks
	// Logger receives health changes and leaked leases; nil is silent.
	Logger *slog.Logger
}

// Hooks are optional callbacks; nil fields are skipped. They run synchronously on the goroutine
// that caused the event (a Lease.Done, a timer, the prober, the runtime's cleanup goroutine for
// OnLeak) with no lock held, so they may call the balancer. The lease and health events take no
// ctx: a pick takes none (it does not block) and a lease carries none. OnRetry and OnHedge
// belong to a request of Do or the proxy and take its ctx.
type Hooks struct {
	// OnHealthChange reports a backend going out of or back into rotation.
	OnHealthChange func(HealthChangeInfo)
	// OnDone reports the end of each lease, with what Lease.Done was told. It runs inside
	// Done, on the request's path: keep it to a few atomic operations (a histogram observation,
	// say).
	OnDone func(DoneInfo)
	// OnLeak reports a lease the garbage collector found without Done having been called.
	OnLeak func(LeakInfo)
	// OnRetry reports each failed attempt of Do, DoCall or the proxy that could be retried,
	// and whether the retry budget allowed the retry.
	OnRetry func(context.Context, RetryInfo)
	// OnHedge reports each hedged attempt as it is sent.
	OnHedge func(context.Context, HedgeInfo)
}

// Reason says why a backend's health changed.
type Reason uint8

const (
	ReasonFailures    Reason = iota // passive: MaxFails failures within Window
	ReasonEjectExpiry               // passive: EjectFor has passed
	ReasonProbeFailed               // active: FailAfter consecutive probes failed
	ReasonProbePassed               // active: PassAfter consecutive probes passed
)

var reasonNames = [...]string{"failures", "eject-expiry", "probe-failed", "probe-passed"}

// String returns the reason's name.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", r)
}

// HealthChangeInfo describes a backend going out of or back into rotation, for
// Hooks.OnHealthChange.
type HealthChangeInfo struct {
	Backend string // the backend's name
	Healthy bool   // its health after the change
	Reason  Reason // what caused the change
	Err     error  // the last failure or probe error, when there is one
}

// DoneInfo describes the end of one lease, for Hooks.OnDone.
type DoneInfo struct {
	Backend string        // the backend's name
	Err     error         // the request's error, as passed to Lease.Done
	Latency time.Duration // as passed to Lease.Done; 0 or negative when not measured
	// Failure says that Options.IsFailure counted Err against the backend's health.
	Failure bool
}

// LeakInfo describes a lease the garbage collector reclaimed, for Hooks.OnLeak.
type LeakInfo struct {
	Backend string // the leased backend's name
}

const (
	defaultMaxFails  = 5
	defaultWindow    = 10 * time.Second
	defaultEjectFor  = 10 * time.Second
	defaultInterval  = 10 * time.Second
	defaultPanic     = 0.5
	defaultEjected   = 0.5
	defaultDecay     = 20
	slowStartFloor   = 0.1
	slowStartSteps   = 10
	probeConcurrency = 16
)

// Validate reports every problem with o at once, or nil; New and Update call it.
func (o *Options[T]) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("lb: "+format, args...)) }
	if o.Policy >= numPolicies {
		add("unknown Policy %d", o.Policy)
	}
	seen := make(map[string]bool, len(o.Backends))
	for i, be := range o.Backends {
		errs = append(errs, checkBackend(fmt.Sprintf("Backends[%d]", i), be)...)
		if seen[be.Name] && be.Name != "" {
			add("Backends[%d]: %w: %q", i, ErrDuplicate, be.Name)
		}
		seen[be.Name] = true
	}
	if math.IsNaN(o.PanicThreshold) || o.PanicThreshold > 1 {
		add("PanicThreshold %v is not a number ≤ 1", o.PanicThreshold)
	}
	if o.Passive.Window < 0 {
		add("Passive.Window %v is negative", o.Passive.Window)
	}
	if o.Passive.EjectFor < 0 {
		add("Passive.EjectFor %v is negative", o.Passive.EjectFor)
	}
	if !(o.Passive.MaxEjected >= 0 && o.Passive.MaxEjected <= 1) {
		add("Passive.MaxEjected %v is not a fraction in [0, 1]", o.Passive.MaxEjected)
	}
	if o.Active.Interval < 0 {
		add("Active.Interval %v is negative", o.Active.Interval)
	}
	if o.Active.Timeout < 0 {
		add("Active.Timeout %v is negative", o.Active.Timeout)
	}
	if o.Active.FailAfter < 0 || o.Active.PassAfter < 0 {
		add("Active.FailAfter %d and PassAfter %d must not be negative", o.Active.FailAfter, o.Active.PassAfter)
	}
	if o.SlowStart < 0 {
		add("SlowStart %v is negative", o.SlowStart)
	}
	if o.DecayResponses < 0 {
		add("DecayResponses %d is negative", o.DecayResponses)
	}
	errs = append(errs, o.RetryBudget.check("RetryBudget")...)
	errs = append(errs, o.Hedge.check("Hedge")...)
	return errors.Join(errs...)
}

// checkBackend returns the problems with be, each prefixed "lb: field: ".
func checkBackend[T any](field string, be Backend[T]) []error {
	var errs []error
	if be.Name == "" {
		errs = append(errs, fmt.Errorf("lb: %s: Name is empty", field))
	}
	if be.Weight < 0 || be.Weight > MaxWeight {
		errs = append(errs, fmt.Errorf("lb: %s: Weight %d is outside [0, %d]", field, be.Weight, MaxWeight))
	}
	return errs
}

// settings are Options with defaults applied, fixed for the balancer's life.
type settings[T any] struct {
	policy      Policy
	placement   func(string) string
	panicAt     float64 // 0 when disabled
	panicZero   bool    // spread over every backend when none is healthy
	maxEjected  float64 // fraction of the backends passive health may keep out
	maxFails    int     // 0 when disabled
	window      time.Duration
	ejectFor    time.Duration
	probe       Prober[T]
	interval    time.Duration
	timeout     time.Duration
	failAfter   int
	passAfter   int
	slowStart   time.Duration
	decay       float64
	isFailure   func(error) bool
	seeded      bool
	hooks       Hooks
	logger      *slog.Logger
	trackEWMA   bool // the policy reads latency
	trackLeases bool // leases carry handles the garbage collector can reclaim (not UntrackedLeases)
}

func (o *Options[T]) settings() settings[T] {
	s := settings[T]{
		policy: o.Policy, placement: o.Placement, probe: o.Active.Probe, slowStart: o.SlowStart,
		isFailure: o.IsFailure, seeded: o.Seed != 0, hooks: o.Hooks, logger: o.Logger,
	}
	switch {
	case o.PanicThreshold == 0:
		s.panicAt = defaultPanic
	case o.PanicThreshold > 0:
		s.panicAt = o.PanicThreshold
	}
	switch {
	case o.Passive.MaxFails == 0:
		s.maxFails = defaultMaxFails
	case o.Passive.MaxFails > 0:
		s.maxFails = o.Passive.MaxFails
	}
	s.panicZero = s.panicAt > 0 && !o.FailClosed
	s.maxEjected = cmp.Or(o.Passive.MaxEjected, defaultEjected)
	s.window = cmp.Or(o.Passive.Window, defaultWindow)
	s.ejectFor = cmp.Or(o.Passive.EjectFor, defaultEjectFor)
	s.interval = cmp.Or(o.Active.Interval, defaultInterval)
	s.timeout = cmp.Or(o.Active.Timeout, s.interval/2)
	s.failAfter = cmp.Or(o.Active.FailAfter, 1)
	s.passAfter = cmp.Or(o.Active.PassAfter, 1)
	s.decay = float64(cmp.Or(o.DecayResponses, defaultDecay))
	if s.isFailure == nil {
		s.isFailure = func(err error) bool { return !errors.Is(err, context.Canceled) }
	}
	if f, ok := s.probe.(ProberFunc[T]); ok && f == nil {
		s.probe = nil // a nil func disables probing rather than failing every probe
	}
	s.trackEWMA = o.Policy == P2CPeakEWMA
	s.trackLeases = !o.UntrackedLeases
	return s
}
