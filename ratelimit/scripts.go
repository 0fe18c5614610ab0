package ratelimit

import "github.com/redis/go-redis/v9"

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
