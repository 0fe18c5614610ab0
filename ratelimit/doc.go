// Package ratelimit limits how often things happen: a token bucket in process, one bucket per key
// with bounded memory, and HTTP middleware that answers 429 with Retry-After and the IETF
// RateLimit header fields. A limiter shared by many processes through Redis, and a hybrid that
// keeps most of its decisions local, live in the subpackage ratelimit/redislimit, so that only
// programs that use them depend on go-redis.
//
// # Which one to use
//
//   - Limiter: one bucket in one process (calls to a downstream API, a background job). Allow
//     never waits; Reserve says how long to wait and can be cancelled; Wait blocks with a context.
//   - Keyed: one bucket per client (IP, user, API key) in one process. Memory is bounded by
//     MaxKeys, and idle keys are swept.
//   - redislimit.Limiter (redislimit.New): one bucket per client shared by all the servers behind
//     a load balancer; redislimit.Hybrid (redislimit.NewHybrid) trades a bounded amount of
//     over-admission for decisions at close to local speed. See package ratelimit/redislimit.
//   - Middleware: puts any of them in front of an http.Handler, keyed by client. A request that
//     costs more than the limit's burst can never be admitted and is answered 413 Content Too
//     Large rather than 429. Keys are at most MaxKeyLen bytes.
//   - Adaptive (NewAdaptive): a concurrency limit (calls in flight, not a rate) that learns from
//     each call's latency and drops (AIMD or Gradient2), with a bounded FIFO or LIFO wait queue,
//     to protect a service or a dependency from overload; AdaptiveMiddleware answers 503 with
//     Retry-After when it sheds. Rate limits keep one client from taking the service; an
//     Adaptive behind them keeps the sum within what the service can serve now.
//
// # Keying by client address
//
// ClientIP (built by NewClientIP from ClientIPOptions) names the client without believing
// anything the client wrote. Configure it with where the server stands:
//
//   - directly exposed: the zero ClientIPOptions; the key is the peer address and forwarding
//     headers are ignored.
//   - behind one proxy (a load balancer): TrustedProxies holding the proxy's addresses, or
//     TrustedHops = 1 when only the depth is known.
//   - behind a CDN and a proxy: TrustedProxies holding both the CDN's edge ranges and the
//     proxy's addresses, or TrustedHops = 2.
//
// X-Forwarded-For (or Forwarded, see Header) is read only as far as trusted proxies wrote it, so
// a client cannot forge its way to fresh buckets. IPv6 clients are grouped by /64 (IPv6Prefix).
//
// # Guarantees
//
// Every limiter here is a token bucket implemented as GCRA: a Limit of Rate r and Burst b admits
// at most b + r·w events in any window of length w, under any concurrency. Decisions are
// all-or-nothing: AllowN(n) takes n tokens or none.
//
// The local limiters keep their state in atomic integers: Allow takes no lock, reads the clock
// once, and allocates nothing. The keyed limiter adds one read lock on one of 64 shards. Time is
// the monotonic clock, so the package works with testing/synctest.
//
// # Concurrency and zero values
//
// All types are safe for concurrent use. Construct them with New, NewKeyed, NewClientIP and
// NewAdaptive; the zero Limiter, like a nil one, admits nothing. Keyed runs a sweeper goroutine
// and has Close(), which stops it and cannot fail; the others start no goroutines and have no
// Close.
package ratelimit
