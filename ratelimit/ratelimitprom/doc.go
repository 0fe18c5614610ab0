// Package ratelimitprom exports rate and concurrency limiters as Prometheus metrics: the
// in-process Limiter, Keyed and Adaptive of package ratelimit, and the Redis limiter of
// ratelimit/redislimit.
//
// One Collector serves every limiter of a process, told apart by a "limiter" label. Its inputs:
//
//   - Watch, WatchKeyed, WatchAdaptive and WatchRedis register a limiter whose state Collect
//     reads at scrape time (Tokens, Len, Limit, Stats): nothing is added to its decisions.
//   - Decider wraps any ratelimit.Decider (what ratelimit.Middleware asks) so that its
//     decisions are counted by result; a decision costs one counter increment more.
//   - RedisHooks returns redislimit.Hooks that observe each round trip to Redis in a histogram
//     by result and count the failure policy's decisions and Redis's recoveries. With them the
//     limiter reads the clock twice per round trip; decisions a Hybrid makes from its lease
//     make no round trip and are not observed.
//
// Limiter and Keyed keep no counters of their own, so that Allow stays one clock read and one
// compare-and-swap: count their decisions with Decider where they are made through Decide.
// internal/bench measures Decide with and without the wrapper.
//
// Wiring a per-client limit in front of a server, and a Redis limiter:
//
//	c, err := ratelimitprom.New(ratelimitprom.Options{})
//	k, err := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerSecond(10)})
//	err = c.WatchKeyed("clients", k)
//	d, err := c.Decider("clients", k)
//	mw, err := ratelimit.Middleware(ratelimit.MiddlewareOptions{Limiter: d})
//	r, err := redislimit.New(redislimit.Options{Client: rdb, Limit: lim, Hooks: c.RedisHooks("shared")})
//	err = c.WatchRedis("shared", r)
//	prometheus.MustRegister(c)
//
// # Metrics
//
// Read at scrape time:
//
//	girder_ratelimit_limit_rate_per_second{limiter}           Limiter, Keyed, Redis: tokens added per second (per key)
//	girder_ratelimit_limit_burst{limiter}                     Limiter, Keyed, Redis: tokens a full bucket holds
//	girder_ratelimit_tokens{limiter}                          Limiter: tokens now, negative while reservations wait
//	girder_ratelimit_keys{limiter}                            Keyed: keys with a bucket
//	girder_ratelimit_adaptive_limit{limiter}                  Adaptive: the concurrency limit now
//	girder_ratelimit_adaptive_in_flight_calls{limiter}        Adaptive: admitted, not yet done
//	girder_ratelimit_adaptive_queued_calls{limiter}           Adaptive: waiting for a slot
//	girder_ratelimit_adaptive_admitted_calls_total{limiter}   Adaptive: calls admitted
//	girder_ratelimit_adaptive_shed_calls_total{limiter}       Adaptive: calls shed, every reason
//	girder_ratelimit_adaptive_dropped_calls_total{limiter}    Adaptive: admitted calls that ended Dropped
//	girder_ratelimit_adaptive_waited_calls_total{limiter}     Adaptive: admitted calls that queued first
//	girder_redislimit_redis_failing{limiter}                  Redis: 1 while the failure policy decides
//	girder_redislimit_consecutive_failures{limiter}           Redis: the current run of failed round trips
//
// Fed by Decider and RedisHooks:
//
//	girder_ratelimit_decisions_total{limiter, result}                 result: allowed, denied, error
//	girder_redislimit_decision_duration_seconds{limiter, result}      round trips; result: allowed, denied, error
//	girder_redislimit_fallback_decisions_total{limiter, result}       result: allowed, denied
//	girder_redislimit_recoveries_total{limiter}
//
// The share of requests a limiter refuses, an adaptive limiter shedding, and the p99 of Redis
// decisions:
//
//	sum by (limiter) (rate(girder_ratelimit_decisions_total{result="denied"}[5m]))
//	  / sum by (limiter) (rate(girder_ratelimit_decisions_total[5m]))
//	rate(girder_ratelimit_adaptive_shed_calls_total[5m]) > 0
//	histogram_quantile(0.99, sum by (limiter, le) (rate(girder_redislimit_decision_duration_seconds_bucket[5m])))
//
// No label grows with traffic: keys (clients) are never labels, only limiter names are. The
// series of a name fed by Decider or RedisHooks exist from that call, at zero, so rate and
// increase see the first event.
//
// This package imports ratelimit/redislimit, and so go-redis; ratelimit itself depends on
// neither go-redis nor client_golang.
//
// # OpenTelemetry
//
// Programs that export OpenTelemetry metrics use this collector through OpenTelemetry's
// Prometheus bridge (go.opentelemetry.io/contrib/bridges/prometheus), which reads a Prometheus
// Gatherer into an OpenTelemetry MeterProvider; girder has no separate OpenTelemetry adapters.
//
// A Collector is safe for concurrent use, and so are the Decider and hooks it returns.
package ratelimitprom
