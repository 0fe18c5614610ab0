package lb_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/girder-go/girder/lb"
)

// A call may try up to three backends; the retry budget (on by default) bounds retries across
// all calls, so an outage adds a fraction to the load instead of tripling it.
func ExampleBalancer_DoCall_retryBudget() {
	b, _ := lb.New(lb.Options[string]{
		Backends: []lb.Backend[string]{{Name: "a", Value: "down"}, {Name: "b", Value: "up"}},
		// At most one retry per ten requests, plus none for free: tight, to show it refusing.
		RetryBudget: lb.RetryBudget{Ratio: 0.1, MinPerSecond: -1},
		Passive:     lb.Passive{MaxFails: -1},
		Hooks: lb.Hooks{OnRetry: func(_ context.Context, ri lb.RetryInfo) {
			fmt.Printf("attempt %d on %s failed; retry budgeted: %v\n", ri.Attempt, ri.Backend, ri.Budgeted)
		}},
	})
	defer b.Close()
	call := func(ctx context.Context, v string) error {
		if v == "down" {
			return errors.New("connection refused")
		}
		return nil
	}
	for range 10 { // build up some budget
		b.DoCall(context.Background(), lb.Call{}, func(context.Context, string) error { return nil })
	}
	for range 4 { // round robin: a, then b (a retry takes a turn too)
		err := b.DoCall(context.Background(), lb.Call{Attempts: 3}, call)
		fmt.Println("result:", err)
	}
	st := b.RetryStats()
	fmt.Println("retries:", st.RetriesAttempted, "refused:", st.RetriesBudgetExhausted)
	// Output:
	// attempt 1 on a failed; retry budgeted: true
	// result: <nil>
	// attempt 1 on a failed; retry budgeted: false
	// result: connection refused
	// result: <nil>
	// attempt 1 on a failed; retry budgeted: false
	// result: connection refused
	// retries: 1 refused: 2
}

// A call marked Hedge that has not answered after the delay is sent to a second backend too;
// the first answer wins and the slower attempt is canceled.
func ExampleBalancer_DoCall_hedge() {
	b, _ := lb.New(lb.Options[string]{
		Backends: []lb.Backend[string]{{Name: "a", Value: "stalled"}, {Name: "b", Value: "quick"}},
		Hedge:    lb.Hedge{Delay: 20 * time.Millisecond}, // or Quantile: 0.95 of observed latency
	})
	defer b.Close()
	for range 20 { // deposits for the hedge budget (10 % of requests by default)
		b.DoCall(context.Background(), lb.Call{Key: "warm-up"}, func(context.Context, string) error { return nil })
	}
	var answer string
	err := b.DoCall(context.Background(), lb.Call{Hedge: true}, func(ctx context.Context, v string) error {
		if v == "stalled" {
			<-ctx.Done() // canceled when the hedge answers
			return ctx.Err()
		}
		answer = v
		return nil
	})
	st := b.RetryStats()
	fmt.Println(answer, err, "hedges sent:", st.HedgesSent, "won:", st.HedgesWon)
	// Output: quick <nil> hedges sent: 1 won: 1
}
