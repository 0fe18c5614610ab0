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

func ExampleLimiter_Allow() {
	l, err := ratelimit.New(ratelimit.Limit{Rate: 1, Burst: 3})
	if err != nil {
		panic(err)
	}
	for i := range 4 {
		fmt.Println("event", i, "allowed:", l.Allow())
	}
	// Output:
	// event 0 allowed: true
	// event 1 allowed: true
	// event 2 allowed: true
	// event 3 allowed: false
}

func ExampleLimiter_Reserve() {
	l, _ := ratelimit.New(ratelimit.Every(time.Second, 1))
	first, _ := l.Reserve()
	second, _ := l.Reserve()
	fmt.Println("first waits", first.Delay())
	fmt.Println("second waits", second.Delay().Round(100*time.Millisecond))
	second.Cancel() // changed our mind: the token goes back
	// Output:
	// first waits 0s
	// second waits 1s
}

func ExampleLimiter_Wait() {
	l, _ := ratelimit.New(ratelimit.Every(time.Hour, 1))
	l.Allow()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// The next token is an hour away: Wait fails at once instead of sleeping for a second.
	err := l.Wait(ctx)
	fmt.Println(errors.Is(err, ratelimit.ErrWouldExceedDeadline))
	// Output:
	// true
}

func ExampleKeyed() {
	k, _ := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerMinute(2), MaxKeys: 10_000})
	defer k.Close()
	for _, ip := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.9"} {
		fmt.Println(ip, k.Allow(ip))
	}
	// Output:
	// 192.0.2.1 true
	// 192.0.2.1 true
	// 192.0.2.1 false
	// 192.0.2.9 true
}

func ExampleMiddleware() {
	k, _ := ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerMinute(1)})
	defer k.Close()
	mw, _ := ratelimit.Middleware(ratelimit.MiddlewareOptions{Limiter: k})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello") }))

	for range 2 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil) // RemoteAddr 192.0.2.1:1234
		h.ServeHTTP(rec, req)
		fmt.Printf("%d RateLimit: %s, Retry-After: %q\n", rec.Code, rec.Header().Get("RateLimit"), rec.Header().Get("Retry-After"))
	}
	// Output:
	// 200 RateLimit: "default";r=0;t=60, Retry-After: ""
	// 429 RateLimit: "default";r=0;t=60, Retry-After: "60"
}
