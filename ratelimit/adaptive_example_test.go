package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/girder-go/girder/ratelimit"
)

func ExampleAdaptive() {
	a, err := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{
		Name:      "inventory",
		Algorithm: ratelimit.AIMD(ratelimit.AIMDOptions{Timeout: 200 * time.Millisecond}),
		MaxLimit:  2, // a static ceiling under the adaptive limit, for the example
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	first, _ := a.Acquire(ctx)
	second, _ := a.Acquire(ctx)
	_, err = a.Acquire(ctx) // the limit is reached and there is no queue
	fmt.Println("third call:", err, errors.Is(err, ratelimit.ErrLimitExceeded))

	first(ratelimit.Success)  // the call completed: its latency is a sample
	second(ratelimit.Dropped) // the call timed out: the limit backs off
	s := a.Stats()
	fmt.Println("limit", s.Limit, "admitted", s.Admitted, "shed", s.Shed, "dropped", s.Dropped)
	// Output:
	// third call: ratelimit: concurrency limit exceeded true
	// limit 1 admitted 2 shed 1 dropped 1
}

func ExampleAdaptive_queue() {
	a, _ := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{
		MinLimit: 1, MaxLimit: 1, // a static limit of one call in flight
		QueueSize: 1, QueueOrder: ratelimit.LIFO, MaxWait: 50 * time.Millisecond,
	})
	hold, _ := a.Acquire(context.Background())
	start := time.Now()
	_, err := a.Acquire(context.Background()) // waits up to MaxWait for the slot
	fmt.Println(err, time.Since(start) >= 50*time.Millisecond)
	hold(ratelimit.Success)
	// Output:
	// ratelimit: concurrency limit exceeded true
}

func ExampleAdaptiveMiddleware() {
	a, _ := ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{MaxLimit: 1})
	mw, err := ratelimit.AdaptiveMiddleware(a, ratelimit.AdaptiveMiddlewareOptions{RetryAfter: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	inside := make(chan struct{})
	release := make(chan struct{})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inside)
			<-release
		}
		fmt.Fprintln(w, "ok")
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/slow", nil))
	<-inside // the one slot is taken
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	fmt.Println(rec.Code, "Retry-After:", rec.Header().Get("Retry-After"))
	close(release)
	// Output:
	// 503 Retry-After: 2
}
