package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/girder-go/girder/ratelimit"
)

// overloadFront puts an adaptive concurrency limit (ratelimit.Adaptive, Gradient2) in front of
// the backends: it learns from the latency of proxied requests how many the backends together
// serve without queueing, and answers the rest at once with 503 and Retry-After rather than
// letting them wait behind the others until every one times out. It complements the retry
// budget (retries cannot multiply the load) and the breakers (a dead backend is left alone):
// those protect from failing backends, this from slow ones. max is the ceiling of the limit,
// 0 for ratelimit's default (1000); a negative max turns it off and returns h and a nil
// limiter.
func overloadFront(h http.Handler, max int) (http.Handler, *ratelimit.Adaptive, error) {
	if max < 0 {
		return h, nil, nil
	}
	// A burst waits up to 50 ms in a LIFO queue (the newest first: its client is the likeliest
	// to be still waiting) before being shed.
	a, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{
		Name: "backends", MaxLimit: max, QueueSize: 100, QueueOrder: ratelimit.LIFO, MaxWait: 50 * time.Millisecond,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: -adaptive-max: %w", err)
	}
	// A 503 or 504 (a backend overloaded or timing out) backs the limit off; a 502 (no backend
	// answered) is fast and says nothing about load (ratelimit.ClassifyStatus).
	mw, err := ratelimit.AdaptiveMiddleware(a, ratelimit.AdaptiveMiddlewareOptions{})
	if err != nil {
		return nil, nil, err
	}
	return mw(h), a, nil
}
