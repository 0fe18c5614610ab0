// Package redislimit is the distributed half of package ratelimit: one token bucket per key
// shared through Redis by every server behind a load balancer (Limiter, built by New), and a
// hybrid that leases tokens from it and spends them locally (Hybrid, built by NewHybrid). It is a
// package of its own so that only programs that use it depend on go-redis v9.
//
// # Decisions
//
// Every decision is one atomic Lua script on Redis, one round trip. The bucket is GCRA (the
// default: one stored timestamp per key) or TokenBucket (a stored token count and when it was
// counted, in a hash); both admit at most Burst + Rate·w events in any window w across all
// servers. The script reads Redis's own clock (TIME), so servers' clocks need not agree.
// Decisions are all-or-nothing; a cost above the burst is refused with ratelimit.ErrExceedsBurst
// (the middleware answers it 413), the Result still describing the bucket.
//
// Hybrid takes LeaseSize tokens per round trip and spends them in process until they run out
// or LeaseTTL passes: fewer round trips, for an over-admission bounded by the leases
// outstanding (see Hybrid).
//
// # Failure
//
// When Redis cannot be reached, a decision is made by the FailurePolicy instead: FailOpen (the
// default) admits, FailClosed denies, and Hooks report it. After a failure the limiter stops
// asking Redis for a short, growing Backoff and resumes on its own when Redis answers again.
// A decision's round trip is bounded by the caller's context, Options.Timeout and the client's
// ReadTimeout and WriteTimeout, which go-redis v9 sets to 5 s by default: set them to what a
// rate-limit decision may take.
//
// Hooks.OnDecide hears every round trip with its duration and answer, and Limiter.Stats reports
// the current run of failures; ratelimit/ratelimitprom turns both into Prometheus metrics.
//
// # Redis Cluster
//
// A script touches exactly one key, Prefix+key, so it works on a *redis.ClusterClient
// unchanged: each client key lands on its own slot, and one tenant's keys spread over the
// masters. A Prefix with a hash tag ("rl:{tenant}:") puts them on one slot, which is only wanted
// when something else must meet them there. Both are tested on a real cluster.
//
// # Failover
//
// While a master (cluster) or the primary (Sentinel) fails over, decisions for the keys it served
// are made by the FailurePolicy (Result.Fallback set, error nil: never an error to the caller),
// and the limiter decides on Redis again by itself once the client reaches the new master. A
// coordinated switch (CLUSTER FAILOVER, SENTINEL FAILOVER) costs at most about a second of
// fallback decisions; a killed master costs the detection and promotion time of the cluster or
// the Sentinels plus the client's rediscovery (README, "Redis Cluster and failover", for the
// figures). go-redis's ClusterClient reloads its slot map on MOVED and ASK and otherwise only
// every ClusterOptions.ClusterStateReloadInterval (60 s by default): after a kill, decisions for
// the dead master's slots fall back until then, so set it to about a second. Replication is
// asynchronous, so a bucket's last updates before a kill may be lost with the old master: a key
// can then admit up to its burst again; no such loss was seen in the tests.
//
// # Concurrency
//
// Limiter and Hybrid are safe for concurrent use and start no goroutines.
package redislimit
