package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/breaker"
)

func Example() {
	b, err := breaker.New(breaker.Options{
		Name:        "inventory",
		WindowSize:  4, // judge the last 4 calls
		MinCalls:    4,
		FailureRate: 0.5,
		OpenBackoff: breaker.Backoff{Initial: 30 * time.Second},
	})
	if err != nil {
		panic(err)
	}
	lookup := func(ctx context.Context) (int, error) { return 0, errors.New("connection refused") }

	for i := range 5 {
		_, err := breaker.Do(context.Background(), b, lookup)
		fmt.Printf("call %d: %v (state %s)\n", i+1, errors.Is(err, breaker.ErrOpen), b.State())
	}
	// Output:
	// call 1: false (state closed)
	// call 2: false (state closed)
	// call 3: false (state closed)
	// call 4: false (state open)
	// call 5: true (state open)
}

// A breaker around an HTTP client: once the server starts failing, requests fail fast without
// reaching it.
func Example_http() {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()

	b, _ := breaker.New(breaker.Options{Name: "upstream", WindowSize: 3, MinCalls: 3, FailureRate: 0.6})
	client := &http.Client{Transport: &breaker.Transport{Breaker: b}}

	for i := range 6 {
		if i == 2 {
			failing.Store(true)
		}
		resp, err := client.Get(srv.URL)
		switch {
		case errors.Is(err, breaker.ErrOpen):
			fmt.Println("fail fast:", b.State())
		case err != nil:
			fmt.Println("error:", err)
		default:
			resp.Body.Close()
			fmt.Println("status", resp.StatusCode)
		}
	}
	// Output:
	// status 200
	// status 200
	// status 503
	// status 503
	// fail fast: open
	// fail fast: open
}

// Allow is the two-step form for middleware: admit, call, then report the outcome.
func ExampleBreaker_Allow() {
	b, _ := breaker.New(breaker.Options{})
	done, err := b.Allow(context.Background())
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	callErr := error(nil) // the outcome of the protected call
	done(callErr)
	fmt.Println(b.Counts().Calls, "call recorded, state", b.State())
	// Output: 1 call recorded, state closed
}

func ExampleOpenError() {
	b, _ := breaker.New(breaker.Options{Name: "payments"})
	b.ForceOpen()
	_, err := breaker.Do(context.Background(), b, func(context.Context) (string, error) { return "paid", nil })
	var open *breaker.OpenError
	if errors.As(err, &open) {
		fmt.Println(open.Name, open.State, "retry at known:", !open.RetryAt.IsZero())
	}
	// Output: payments open retry at known: false
}
