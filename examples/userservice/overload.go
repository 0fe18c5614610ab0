package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/girder-go/girder/ratelimit"
)

// withOverload adds an adaptive concurrency limit (ratelimit.Adaptive, Gradient2) inside the
// per-client rate limit: the rate limit keeps each client to its quota, the adaptive limit keeps
// the sum of all clients' requests to what the service serves in time now, learned from their
// latency, so that when the database slows down the excess is answered at once with 503 and
// Retry-After instead of queueing until every request times out. A burst waits up to 50 ms in
// a LIFO queue (the newest first: its client is the likeliest to be still waiting) before being
// shed. max is the ceiling of the limit, 0 for ratelimit's default (1000); a negative max leaves
// only the rate limit and returns a nil limiter.
func withOverload(rate func(http.Handler) http.Handler, max int) (func(http.Handler) http.Handler, *ratelimit.Adaptive, error) {
	if max < 0 {
		return rate, nil, nil
	}
	a, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{
		Name: "users", MaxLimit: max, QueueSize: 100, QueueOrder: ratelimit.LIFO, MaxWait: 50 * time.Millisecond,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("userservice: -adaptive-max: %w", err)
	}
	adaptive, err := ratelimit.AdaptiveMiddleware(a, ratelimit.AdaptiveMiddlewareOptions{})
	if err != nil {
		return nil, nil, err
	}
	return func(h http.Handler) http.Handler { return rate(adaptive(h)) }, a, nil
}
