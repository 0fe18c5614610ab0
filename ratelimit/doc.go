// Package ratelimit limits how often things happen: a token bucket in process, one bucket per key
// with bounded memory, a limiter shared by many processes through Redis, a hybrid of the two that
// keeps most decisions local, and HTTP middleware that answers 429 with Retry-After and the IETF
// RateLimit header fields.
//
// # Which one to use
//
//   - Limiter: one bucket in one process (calls to a downstream API, a background job). Allow
//     never waits; Reserve says how long to wait and can be cancelled; Wait blocks with a context.
//   - Keyed: one bucket per client (IP, user, API key) in one process. Memory is bounded by
//     MaxKeys, and idle keys are swept.
//   - Redis: one bucket per client shared by all the servers behind a load balancer. Every
//     decision is one atomic Lua script on Redis, one round trip, timed by Redis's clock.
//   - Hybrid: the Redis limiter's sharing at close to local speed, for a bounded amount of
//     over-admission (see Hybrid).
//   - Middleware: puts any of them in front of an http.Handler, keyed by client. Key by
//     ClientIP, configured with where the server stands (directly exposed, behind a proxy,
//     behind a CDN and a proxy): it reads X-Forwarded-For or Forwarded only as far as trusted
//     proxies wrote them, so a client cannot forge its way to fresh buckets, and groups IPv6
//     clients by /64. Keys are at most MaxKeyLen bytes.
//
// # Guarantees
//
// Every limiter here is a token bucket (implemented as GCRA, or as a stored token count on Redis
// if asked): a Limit of Rate r and Burst b admits at most b + r·w events in any window of length w,
// under any concurrency. Decisions are all-or-nothing: AllowN(n) takes n tokens or none.
//
// The local limiters keep their state in atomic integers: Allow takes no lock, reads the clock
// once, and allocates nothing. The keyed and hybrid limiters add one read lock on one of 64
// shards. Time is the monotonic clock, so the package works with testing/synctest.
//
// # Failure
//
// When Redis cannot be reached, the Redis and Hybrid limiters decide by their FailurePolicy
// (FailOpen by default) and report it through RedisHooks; after a failure they stop asking
// Redis for a short, growing backoff, and resume on their own when it answers again.
//
// # Concurrency and zero values
//
// All types are safe for concurrent use. Construct them with New, NewKeyed, NewRedis and
// NewHybrid; the zero Limiter, like a nil one, admits nothing. Keyed runs a sweeper goroutine and
// has Close; the others start no goroutines.
package ratelimit
