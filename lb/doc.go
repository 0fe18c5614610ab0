// Package lb spreads requests over a set of backends of any type: addresses, clients, URLs.
//
// A Balancer[T] picks a backend according to a Policy and keeps unhealthy ones out of rotation:
//
//	b, err := lb.New(lb.Options[string]{
//		Policy:   lb.P2CPeakEWMA,
//		Backends: []lb.Backend[string]{{Name: "a", Value: "10.0.0.1:80"}, {Name: "b", Value: "10.0.0.2:80"}},
//	})
//	lease, err := b.Pick()
//	// ... send the request to lease.Backend() ...
//	lease.Done(err, time.Since(start))
//
// # Choosing a policy
//
//   - P2CPeakEWMA (Finagle, Linkerd) for request/response traffic where backends differ or
//     degrade: it weighs latency and load and keeps tail latency close to a full scan at O(1).
//   - P2CLeastRequest (Envoy) when latency says little (streams, very uneven request sizes).
//   - LeastConnections (nginx least_conn) when the exact minimum matters. An index finds it in
//     O(log n), but behind a mutex that every pick and Done of this policy takes, so under many
//     cores at once P2C scales better.
//   - WeightedRoundRobin (nginx's smooth variant) or RoundRobin for identical, predictable backends.
//   - Random when the balancer is one of many clients and coordination is not worth it.
//   - ConsistentHash for sticky sessions and cache affinity. A built-in ring places keys; to share
//     placement with other components pass a ring's lookup as Options.Placement (lb does not
//     depend on girder's shard package: any func(key string) string naming a backend works).
//     It places by key only: Pick and Do return ErrKeyRequired; use PickKey and DoKey.
//
// # The lease contract
//
// Pick returns a Lease; call its Done exactly once with the request's error and latency. Done
// releases the in-flight count the least-request policies read, feeds peak EWMA and counts
// failures toward passive health. Extra calls are ignored. A lease dropped without Done is
// released by the garbage collector (and reported through Hooks.OnLeak), so a bug or a panic
// cannot pin a backend as busy forever. Do and the HTTP proxy handle the lease for you.
//
// Hooks.OnDone sees every lease end with its backend, error and latency, which is where a
// latency histogram plugs in (lb/lbprom does); Hooks.OnHealthChange and Hooks.OnLeak see health
// changes and reclaimed leases.
//
// That safety net is a handle per lease, recycled through a sync.Pool: it costs a pick and its
// Done one compare-and-swap and the pool's round trip. Options.UntrackedLeases drops it: a
// lease is then a plain value, Done must be called exactly once, and nothing reclaims a
// forgotten lease. Choose it when every lease goes through Do or NewProxy, or when a pool round
// trip per pick is too much for the path; keep the default when callers handle leases by hand.
//
// # Health
//
// Passive: MaxFails failures within Window eject a backend for EjectFor (nginx's max_fails and
// fail_timeout). Active: an optional Prober runs every Interval in one goroutine; FailAfter
// failed probes take a backend out and PassAfter passed probes bring it back. A backend is in
// rotation when neither check has it out and its optional Availability check (a circuit
// breaker's Available method, for instance) agrees. A backend that comes back ramps up over
// SlowStart. Backup backends serve only when no primary is usable. Stats says which of the
// checks keeps a backend out.
//
// A few random errors must not take the whole service down, so health never empties the
// balancer by default (Envoy's outlier detection and panic mode):
//
//   - Passive health ejects at most Passive.MaxEjected of the backends at once (half by
//     default, at least one, and never the last one below 1). A backend that reaches MaxFails
//     while the cap is reached stays in; TestEjectionCap checks the cap, and
//     TestContractRandomErrorsKeepService checks for every policy that 1 % random errors with
//     MaxFails 5 neither exceed it nor fail a pick with ErrNoBackend.
//   - When fewer than PanicThreshold of the primaries are healthy, the balancer spreads over all
//     of them rather than crush the survivors (panic mode); when no backend at all is healthy,
//     it spreads over every backend, primaries first. Options.FailClosed makes picks fail with
//     ErrNoBackend instead in that last case, and a negative PanicThreshold turns panic mode
//     off. Availability checks apply in panic mode too: picks fail with ErrNoBackend when no
//     backend is available (TestContract, TestPanicThreshold).
//
// Whichever backends are out, and however they went (ejected, probe down, removed), the others
// share the picks as the policy promises: evenly under RoundRobin, in proportion to weight under
// the other policies; under ConsistentHash the survivors keep their keys and share the missing
// backend's keys by weight (TestContractSurvivorsShareEvenly,
// TestContractHashSurvivorsKeepTheirKeys). LeastConnections breaks ties in favour of the backend
// picked least recently.
//
// # Guarantees and costs
//
// A Balancer is safe for concurrent use. Picks read an immutable snapshot through an atomic
// pointer: no allocation, no clock read, and no lock but LeastConnections's index. Picks are
// O(1) in the number of backends while all of them are usable; ConsistentHash and
// LeastConnections are O(log n). Backends that are out cost a pick that meets them a few more
// draws or turns, and a scan, O(n), when the draws keep meeting them; LeastConnections scans
// in panic mode, with availability checks, or when a retry must avoid some backends.
// Membership changes (Add, Remove, SetWeight, Update) copy the snapshot and swap it; a backend
// kept by name keeps its live state. Only a reported failure
// reads the clock; peak EWMA ages its estimates by responses seen rather than by time, and a
// P2C pick compares two estimates by the gap between their updates, so it reads no shared
// counter. Close stops the prober and every timer and waits for them. There is no useful zero
// Balancer: use New.
//
// What a pick and its Done cost is mostly locked instructions: counting the request in and out
// of flight, the round-robin counter, the tracked lease's compare-and-swap and sync.Pool round
// trip, LeastConnections's mutex at the pick and at Done, and for P2CPeakEWMA the response count
// and the latency word. internal/bench measures pick+done per policy beside its machine rows,
// which show what the machine charges for each of those.
//
// # HTTP proxy
//
// NewProxy puts a Balancer behind net/http/httputil.ReverseProxy: one pick per attempt, and a
// failed idempotent request retried on a backend it has not tried, within the retry budget. It
// keeps request bodies up to ProxyOptions.MaxRetryBodyBytes (64 KiB) in memory so that a PUT or
// a keyed POST can be sent again; larger ones stream through with one attempt. Each attempt's
// request carries its backend in its context (BackendFromContext), so the transport below can
// use per-backend state, such as a circuit breaker, without mapping URLs back to backends.
//
// # Retries, the retry budget and hedging
//
// Do makes one attempt. DoCall takes a Call: Attempts lets a failed call move on to a backend
// it has not tried, as the proxy does for idempotent requests. Per-request limits alone let
// retries multiply the load when a dependency fails every request (three attempts each is
// three times the traffic, at the worst moment), so every retry of DoCall and NewProxy also
// draws on the balancer's Options.RetryBudget (Finagle's, Envoy's and gRPC's retry budget):
// over a sliding window, retries may number at most Ratio of the requests plus MinPerSecond per
// second. The budget is on by default (20 % plus 10 per second over 10 s), which leaves single
// retries of occasional failures alone and caps an outage at a fraction of extra load;
// TestRetryBudgetBounds checks the bound and TestSimulationRetryBudget compares attempts per
// request with and without it. A refused retry is not sent: the caller gets the last attempt's
// error, RetryStats counts it and Hooks.OnRetry reports it with Budgeted false. Turn the
// budget off (a negative Ratio) only when something else bounds retries.
//
// Hedging ("The Tail at Scale") is off by default, because it sends some requests twice: use it
// for idempotent reads where tail latency matters and backends have spare capacity. With
// Options.Hedge set, a DoCall with Hedge (or a GET, HEAD or OPTIONS through the proxy) that has
// not answered after the delay, a fixed Delay or a Quantile of the balancer's observed latency,
// is sent to another backend as well; the first success wins and the other attempt's ctx is
// canceled. The loser's lease ends with context.Canceled, which passive health does not count
// (TestHedgeLoserCanceled, TestProxyHedge). Hedges draw on their own budget, MaxExtra of the
// requests (10 % by default), so hedging adds at most that much load; a budget smaller than
// 1 − Quantile hedges only part of the tail (TestSimulationHedging). A hedge and a retry each
// count as one of a request's Attempts. Cost: an unhedged DoCall runs fn on the caller's
// goroutine, and a request reads the clock and adds to the budget's counters with a
// compare-and-swap, no lock; a hedged call runs each attempt on a goroutine of its own, and
// makes a few allocations per call: the goroutine, a channel, a cancelable ctx and the hedge
// timer (BenchmarkHedge).
package lb
