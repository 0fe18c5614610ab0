package redislimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/internal/backoff"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/internal/gcra"
	"github.com/redis/go-redis/v9"
)

// Algorithm is how the Redis limiter keeps each key's bucket.
type Algorithm int

const (
	// GCRA keeps one number per key, the theoretical arrival time, as go-redis/redis_rate does.
	// It is the default.
	GCRA Algorithm = iota
	// TokenBucket keeps the tokens left and when they were counted, in a hash. It admits the same
	// requests as GCRA; choose it if other tools read the keys.
	TokenBucket
)

func (a Algorithm) String() string {
	switch a {
	case GCRA:
		return "GCRA"
	case TokenBucket:
		return "token bucket"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// FailurePolicy is what a Redis limiter decides when it cannot ask Redis.
type FailurePolicy int

const (
	// FailOpen admits every request while Redis is unreachable: an outage of Redis does not
	// become an outage of the service. It is the default, as in Envoy's global rate limiting.
	FailOpen FailurePolicy = iota
	// FailClosed denies every request while Redis is unreachable.
	FailClosed
)

func (f FailurePolicy) String() string {
	switch f {
	case FailOpen:
		return "fail open"
	case FailClosed:
		return "fail closed"
	}
	return fmt.Sprintf("FailurePolicy(%d)", int(f))
}

// ErrUnavailable is passed to Hooks.OnFallback for decisions made without asking Redis
// because it failed moments ago (see RedisOptions.Backoff).
var ErrUnavailable = errors.New("redislimit: redis unavailable")

// Hooks observe a Redis limiter. Every field is optional and must not block.
type Hooks struct {
	// OnFallback is called for each decision made by the failure policy instead of Redis, with
	// the caller's ctx.
	OnFallback func(ctx context.Context, info FallbackInfo)
	// OnRecover is called once when Redis answers again after failing.
	OnRecover func(info RecoverInfo)
	// OnDecide is called after each round trip to Redis, answered or failed, with the caller's
	// ctx. With it set, a round trip reads the clock twice more, for DecideInfo.Took.
	OnDecide func(ctx context.Context, info DecideInfo)
}

// DecideInfo describes one round trip to Redis, for Hooks.OnDecide.
type DecideInfo struct {
	Key     string        // the key the caller asked about
	Allowed bool          // Redis's answer; false when Err is set
	Took    time.Duration // the round trip, the script's run included
	Err     error         // why Redis gave no answer (the failure policy then decides), or nil
}

// FallbackInfo describes a decision the failure policy made instead of Redis.
type FallbackInfo struct {
	Key     string // the key the caller asked about
	Err     error  // the Redis error, or ErrUnavailable while backing off
	Allowed bool   // what the policy decided
}

// RecoverInfo describes Redis answering again after failing.
type RecoverInfo struct {
	Down time.Duration // how long Redis was failing
}

// Options configures a Limiter.
type Options struct {
	// Client is the Redis client: a *redis.Client, *redis.ClusterClient or *redis.Ring. Required.
	Client redis.Scripter
	// Limit applies to every key separately. Required.
	Limit ratelimit.Limit
	// Algorithm is GCRA (the default) or TokenBucket.
	Algorithm Algorithm
	// Prefix is put before every key in Redis; "" means "ratelimit:". Use a distinct prefix for
	// each Limit sharing one Redis.
	Prefix string
	// Failure is the policy when Redis fails: FailOpen (the default) or FailClosed.
	Failure FailurePolicy
	// Timeout bounds one decision's round trip beyond what the caller's context and the client's
	// own ReadTimeout and WriteTimeout bound (go-redis v9 defaults: 5 s each). 0 adds no bound of its
	// own, which saves a context and a timer per decision: set the client's timeouts to what a
	// rate-limit decision may take, or set Timeout. go-redis heeds a context's deadline only
	// when the client has ContextTimeoutEnabled, so Timeout, like the caller's deadline, needs
	// it. Running out of time counts as a Redis failure; the caller's own context ending does not
	// (its error is returned).
	Timeout time.Duration
	// Backoff is how long decisions skip Redis after it fails, growing with each consecutive
	// failure, so that a dead Redis does not cost every request a timeout. Zero fields mean
	// Initial 100 ms, Max 50 times Initial, Multiplier 2, Jitter 0.2.
	Backoff Backoff
	// NoBackoff asks Redis on every decision, even right after a failure.
	NoBackoff bool
	// Hooks observe fallbacks and recovery.
	Hooks Hooks
	// Logger receives a warning when Redis starts failing and when it recovers; nil is silent.
	Logger *slog.Logger
}

// Backoff is the one shape of a growing delay in girder: the delay before attempt n is
// min(Max, Initial·Multiplier^n), less up to Jitter of itself at random.
type Backoff = backoff.Policy

// Validate reports every problem with o, or nil; New calls it.
func (o Options) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("redislimit: Client is nil"))
	}
	if err := o.Limit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Algorithm != GCRA && o.Algorithm != TokenBucket {
		errs = append(errs, fmt.Errorf("redislimit: unknown %v", o.Algorithm))
	}
	if o.Failure != FailOpen && o.Failure != FailClosed {
		errs = append(errs, fmt.Errorf("redislimit: unknown %v", o.Failure))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("redislimit: Timeout %v is negative", o.Timeout))
	}
	for _, err := range o.Backoff.Check("Backoff") {
		errs = append(errs, fmt.Errorf("redislimit: %w", err))
	}
	return errors.Join(errs...)
}

// Redis is a limiter shared by every process that uses the same Redis and prefix. Each decision
// is one Lua script run atomically on Redis in one round trip, with Redis's clock. When Redis
// fails, the failure policy decides and Hooks.OnFallback hears about it.
//
// A Redis limiter is safe for concurrent use and starts no goroutines.
type Limiter struct {
	client  redis.Scripter
	p       *params
	script  *redis.Script
	prefix  string
	failure FailurePolicy
	timeout time.Duration
	backoff backoff.Policy // zero Initial: no backoff
	hooks   Hooks
	log     *slog.Logger
	epoch   time.Time

	failures  atomic.Int64 // consecutive failures
	downSince atomic.Int64 // ns since epoch of the first of them
	skipUntil atomic.Int64 // ns since epoch before which Redis is not asked
	interval  string       // ARGV[1], µs per token
	burst     string       // ARGV[2]
}

// New returns a Redis limiter. It does not contact Redis.
func New(o Options) (*Limiter, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	r := &Limiter{
		client: o.Client, p: paramsOf(o.Limit), prefix: o.Prefix, failure: o.Failure,
		timeout: o.Timeout, hooks: o.Hooks, log: o.Logger, epoch: time.Now(),
	}
	if r.prefix == "" {
		r.prefix = "ratelimit:"
	}
	if !o.NoBackoff {
		b := o.Backoff
		if b.Initial == 0 {
			b.Initial = 100 * time.Millisecond
		}
		if b.Max == 0 {
			b.Max = 50 * b.Initial
		}
		if b.Jitter == 0 {
			b.Jitter = 0.2
		}
		r.backoff = b
	}
	r.script = gcraScript
	if o.Algorithm == TokenBucket {
		r.script = tokenBucketScript
	}
	r.interval = fmt.Sprintf("%.6f", float64(r.p.interval)/1e3)
	r.burst = fmt.Sprint(r.p.burst)
	return r, nil
}

// Limit returns the limit every key has.
func (r *Limiter) Limit() ratelimit.Limit { return r.p.limit }

// Allow decides one event for key; see Decide.
func (r *Limiter) Allow(ctx context.Context, key string) (ratelimit.Result, error) {
	return r.Decide(ctx, key, 1)
}

// Decide decides whether n events for key may happen now and if so takes their tokens, in one
// round trip to Redis. When Redis fails, Result.Fallback is set, Allowed follows the failure
// policy, and the error is nil: the policy has decided. The error is non-nil only for bad input
// (ErrEmptyKey, ErrInvalidN, ErrExceedsBurst) or when ctx ended, and then Allowed is false. For
// n above the burst Redis is still asked, taking nothing, so that the Result describes the
// bucket for the RateLimit fields.
func (r *Limiter) Decide(ctx context.Context, key string, n int) (ratelimit.Result, error) {
	if err := r.check(key, n); err != nil {
		return ratelimit.Result{}, err
	}
	res, _, err := r.take(ctx, key, n, n)
	if err == nil && r.exceeds(n) {
		return r.exceedsBurst(res, n)
	}
	return res, err
}

// exceeds reports whether n is more than the burst, so that the request can never be admitted.
func (r *Limiter) exceeds(n int) bool { return int64(n) > r.p.burst && !r.p.inf }

// exceedsBurst turns the (always denied) decision for n > burst into its error; the Result
// still describes the bucket, as the script took nothing.
func (r *Limiter) exceedsBurst(res ratelimit.Result, n int) (ratelimit.Result, error) {
	res.Allowed = false
	res.RetryAfter = 0
	return res, fmt.Errorf("%w: %d > %d", ratelimit.ErrExceedsBurst, n, r.p.burst)
}

func (r *Limiter) check(key string, n int) error {
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil Redis", ratelimit.ErrInvalidLimit)
	case key == "":
		return ratelimit.ErrEmptyKey
	case n < 0:
		return fmt.Errorf("%w: %d", ratelimit.ErrInvalidN, n)
	}
	return nil
}

// take runs the script: admit if need tokens are there, then take up to want. It returns the
// decision, the tokens taken, and an error only when ctx ended.
func (r *Limiter) take(ctx context.Context, key string, need, want int) (ratelimit.Result, int, error) {
	if r.p.inf {
		return ratelimit.Result{Allowed: true, Limit: r.p.limit, Remaining: int(r.p.burst)}, want, nil
	}
	if err := ctx.Err(); err != nil {
		return ratelimit.Result{}, 0, err
	}
	if r.backoff.Initial > 0 && r.failures.Load() > 0 && r.now() < r.skipUntil.Load() {
		return r.fallback(ctx, key, ErrUnavailable), 0, nil
	}
	var start time.Time
	if r.hooks.OnDecide != nil {
		start = time.Now()
	}
	vals, err := r.run(ctx, key, need, want)
	if err == nil && len(vals) != 5 {
		err = fmt.Errorf("redislimit: script returned %d values, want 5", len(vals))
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return ratelimit.Result{}, 0, cerr
		}
		err = fmt.Errorf("redislimit: redis: %w", err)
		if f := r.hooks.OnDecide; f != nil {
			f(ctx, DecideInfo{Key: key, Took: time.Since(start), Err: err})
		}
		r.failed(err)
		return r.fallback(ctx, key, err), 0, nil
	}
	if f := r.hooks.OnDecide; f != nil {
		f(ctx, DecideInfo{Key: key, Allowed: vals[0] == 1, Took: time.Since(start)})
	}
	r.succeeded()
	res := ratelimit.Result{
		Allowed:    vals[0] == 1,
		Limit:      r.p.limit,
		Remaining:  int(vals[2]),
		RetryAfter: time.Duration(vals[3]) * time.Microsecond,
		Reset:      time.Duration(vals[4]) * time.Microsecond,
	}
	return res, int(vals[1]), nil
}

// run runs the script once, bounded by r.timeout if one is set.
func (r *Limiter) run(ctx context.Context, key string, need, want int) ([]int64, error) {
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	return r.script.Run(ctx, r.client, []string{r.prefix + key}, r.interval, r.burst, need, want).Int64Slice()
}

func (r *Limiter) now() int64 { return int64(time.Since(r.epoch)) }

func (r *Limiter) fallback(ctx context.Context, key string, err error) ratelimit.Result {
	allowed := r.failure == FailOpen
	if f := r.hooks.OnFallback; f != nil {
		f(ctx, FallbackInfo{Key: key, Err: err, Allowed: allowed})
	}
	res := ratelimit.Result{Allowed: allowed, Limit: r.p.limit, Fallback: true}
	if !allowed {
		// Nothing is known about the bucket; suggest a retry once Redis is asked again.
		res.RetryAfter = max(time.Duration(r.skipUntil.Load()-r.now()), time.Second)
	}
	return res
}

func (r *Limiter) failed(err error) {
	n := r.failures.Add(1)
	now := r.now()
	if n == 1 {
		r.downSince.Store(now)
		if r.log != nil {
			r.log.Warn("redislimit: redis failed, using the failure policy", "policy", r.failure.String(), "err", err)
		}
	}
	if r.backoff.Initial > 0 {
		r.skipUntil.Store(now + int64(r.backoff.Delay(int(min(n-1, 30)))))
	}
}

func (r *Limiter) succeeded() {
	if r.failures.Load() == 0 {
		return
	}
	if r.failures.Swap(0) == 0 {
		return
	}
	down := time.Duration(r.now() - r.downSince.Load())
	if r.log != nil {
		r.log.Info("redislimit: redis recovered", "down", down)
	}
	if f := r.hooks.OnRecover; f != nil {
		f(RecoverInfo{Down: down})
	}
}

// Stats is a snapshot of a Redis limiter's view of Redis.
type Stats struct {
	// Failures counts Redis's consecutive failed round trips; 0 means its last round trip
	// was answered. While it is above 0 the failure policy decides.
	Failures int64
	// Down is how long Redis has been failing; 0 when Failures is 0.
	Down time.Duration
}

// Stats returns a snapshot: two atomic loads.
func (r *Limiter) Stats() Stats {
	if r == nil {
		return Stats{}
	}
	n := r.failures.Load()
	if n == 0 {
		return Stats{}
	}
	return Stats{Failures: n, Down: time.Duration(max(r.now()-r.downSince.Load(), 0))}
}

// Key returns the Redis key that holds key's bucket.
func (r *Limiter) Key(key string) string { return r.prefix + key }

// The scripts below make one decision each, atomically, in one round trip, with time read from
// Redis (TIME) so that the clocks of the application servers do not matter. Time is in
// microseconds, as TIME gives it; Lua numbers are doubles, exact for integers up to 2^53 µs
// (285 years).
//
// Both take KEYS[1] and ARGV = {interval µs per token, burst, need, want}: the request is
// admitted if at least need tokens are there, and then takes up to want of them (the hybrid
// limiter leases want > need; a plain decision has want = need). Both return
// {allowed, taken, remaining, retry after µs, reset µs}. A key expires when its bucket would be
// full again, so forgetting it changes nothing.

// gcraScript stores the theoretical arrival time (TAT) as a string.
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tau = interval * burst
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then tat = now end
local avail = math.floor((now + tau - tat) / interval + 1e-9)
if avail < need then
	local retry = tat + need * interval - tau - now
	return {0, 0, math.max(avail, 0), math.ceil(retry), math.ceil(tat - now)}
end
local take = math.min(want, avail)
local newtat = tat + take * interval
if take > 0 then
	redis.call("SET", KEYS[1], string.format("%.3f", newtat), "PX", math.max(1, math.ceil((newtat - now) / 1000)))
end
return {1, take, avail - take, 0, math.ceil(newtat - now)}
`)

// tokenBucketScript stores the tokens left and the time they were counted, in a hash.
var tokenBucketScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call("HMGET", KEYS[1], "tokens", "ts")
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
	tokens = burst
	ts = now
end
if now > ts then
	tokens = math.min(burst, tokens + (now - ts) / interval)
end
local avail = math.floor(tokens + 1e-9)
if avail < need then
	return {0, 0, math.max(avail, 0), math.ceil((need - tokens) * interval), math.ceil((burst - tokens) * interval)}
end
local take = math.min(want, avail)
tokens = tokens - take
local reset = (burst - tokens) * interval
if take > 0 then
	redis.call("HSET", KEYS[1], "tokens", string.format("%.6f", tokens), "ts", string.format("%.0f", now))
	redis.call("PEXPIRE", KEYS[1], math.max(1, math.ceil(reset / 1000)))
end
return {1, take, avail - take, 0, math.ceil(reset)}
`)

// params is a Limit with its GCRA integers.
type params struct {
	limit    ratelimit.Limit
	burst    int64
	interval int64 // ns per token
	inf      bool
}

func paramsOf(l ratelimit.Limit) *params {
	g := gcra.New(l.Rate, l.Burst)
	return &params{limit: l, burst: g.Burst, interval: g.Interval, inf: g.Inf}
}
