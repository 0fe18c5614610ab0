package lb

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// RetryBudget bounds the retries of Do and NewProxy across all requests of a balancer, the way
// Finagle, Envoy and gRPC do: over any Window, retries may number at most Ratio times the
// requests plus MinPerSecond per second of the window. Per-request limits (Call.Attempts,
// ProxyOptions.Attempts) still cap each request; the budget caps their sum, so that when a
// dependency fails every request the retries add a fraction to the load rather than multiply
// it. A retry the budget refuses is not sent: the caller gets the last attempt's error.
//
// The budget is on by default: the zero value means Ratio 0.2, MinPerSecond 10 and Window 10 s.
// A negative Ratio turns it off, leaving only the per-request limits.
type RetryBudget struct {
	// Ratio is the largest number of retries per request over the window; 0 means 0.2,
	// negative disables the budget.
	Ratio float64
	// MinPerSecond is the retries allowed whatever the traffic, so that a quiet service can
	// still retry; 0 means 10, negative means none.
	MinPerSecond float64
	// Window is the span over which requests and retries are counted; 0 means 10 s.
	Window time.Duration
}

// check returns the problems with rb, each prefixed "lb: field.".
func (rb RetryBudget) check(field string) []error {
	var errs []error
	if math.IsNaN(rb.Ratio) || math.IsInf(rb.Ratio, 0) {
		errs = append(errs, fmt.Errorf("lb: %s.Ratio %v is not a finite number", field, rb.Ratio))
	}
	if math.IsNaN(rb.MinPerSecond) || math.IsInf(rb.MinPerSecond, 0) {
		errs = append(errs, fmt.Errorf("lb: %s.MinPerSecond %v is not a finite number", field, rb.MinPerSecond))
	}
	if rb.Window < 0 {
		errs = append(errs, fmt.Errorf("lb: %s.Window %v is negative", field, rb.Window))
	}
	return errs
}

const (
	defaultBudgetRatio  = 0.2
	defaultBudgetMinRPS = 10
	defaultBudgetWindow = 10 * time.Second
	budgetSlots         = 10
)

// budget counts requests (deposits) and retries (withdrawals) in budgetSlots time slots that
// together span the window. Each slot packs the index of the slot period it counts (high 32
// bits) with its count (low 32 bits) in one word, so a deposit is one clock read and a
// compare-and-swap, with no lock; a slot left from an older period counts as empty.
type budget struct {
	ratio   float64
	reserve float64 // retries allowed whatever the traffic: MinPerSecond × Window
	slot    time.Duration
	origin  time.Time
	deposit [budgetSlots]atomic.Uint64
	spent   [budgetSlots]atomic.Uint64
}

// newBudget returns the budget rb describes, or nil when rb disables it.
func newBudget(rb RetryBudget, defRatio, defMin float64) *budget {
	if rb.Ratio < 0 {
		return nil
	}
	ratio := rb.Ratio
	if ratio == 0 {
		ratio = defRatio
	}
	minRPS := rb.MinPerSecond
	switch {
	case minRPS == 0:
		minRPS = defMin
	case minRPS < 0:
		minRPS = 0
	}
	window := rb.Window
	if window == 0 {
		window = defaultBudgetWindow
	}
	return &budget{ratio: ratio, reserve: minRPS * window.Seconds(), slot: max(window/budgetSlots, 1), origin: time.Now()}
}

// period returns the index of the current slot period.
func (b *budget) period() uint64 { return uint64(time.Since(b.origin) / b.slot) }

// add counts one event in the current period of the slots.
func add(slots *[budgetSlots]atomic.Uint64, p uint64) {
	s := &slots[p%budgetSlots]
	tag := (p & math.MaxUint32) << 32
	for {
		v := s.Load()
		n := tag | 1
		if v&^math.MaxUint32 == tag {
			n = v + 1
		}
		if s.CompareAndSwap(v, n) {
			return
		}
	}
}

// sum returns the events counted in the window that ends with period p.
func sum(slots *[budgetSlots]atomic.Uint64, p uint64) float64 {
	var total uint64
	for i := range uint64(budgetSlots) {
		if p < i {
			break
		}
		q := p - i
		v := slots[q%budgetSlots].Load()
		if v>>32 == q&math.MaxUint32 {
			total += v & math.MaxUint32
		}
	}
	return float64(total)
}

// request deposits one request.
func (b *budget) request() {
	if b != nil {
		add(&b.deposit, b.period())
	}
}

// withdraw takes one retry from the budget and reports whether there was one to take. Under
// concurrent withdrawals the bound may be passed by the number of retries decided at once.
func (b *budget) withdraw() bool {
	if b == nil {
		return true
	}
	p := b.period()
	if sum(&b.spent, p)+1 > b.ratio*sum(&b.deposit, p)+b.reserve {
		return false
	}
	add(&b.spent, p)
	return true
}

// RetryStats counts what the retry budget and hedging did, since New.
type RetryStats struct {
	Requests               int64 // requests through Do, DoKey, DoCall and NewProxy
	RetriesAttempted       int64 // retries sent
	RetriesBudgetExhausted int64 // retries not sent because the budget was spent
	HedgesSent             int64 // hedged attempts sent
	HedgesWon              int64 // hedged attempts whose answer was the one returned
}

type retryCounters struct {
	requests, retries, exhausted, hedges, hedgesWon atomic.Int64
}

// RetryStats returns the balancer's retry and hedging counters.
func (b *Balancer[T]) RetryStats() RetryStats {
	if b == nil {
		return RetryStats{}
	}
	c := &b.counters
	return RetryStats{Requests: c.requests.Load(), RetriesAttempted: c.retries.Load(),
		RetriesBudgetExhausted: c.exhausted.Load(), HedgesSent: c.hedges.Load(), HedgesWon: c.hedgesWon.Load()}
}

// RetryBudgetLeft returns how many retries the retry budget allows now: Ratio times the
// requests of the window plus the reserve, minus the retries of the window; +Inf when
// Options.RetryBudget turns the budget off.
func (b *Balancer[T]) RetryBudgetLeft() float64 {
	if b == nil || b.retry == nil {
		return math.Inf(1)
	}
	p := b.retry.period()
	return max(b.retry.ratio*sum(&b.retry.deposit, p)+b.retry.reserve-sum(&b.retry.spent, p), 0)
}

// RetryInfo describes a failed attempt after which a retry was possible, for Hooks.OnRetry.
type RetryInfo struct {
	Backend string // the backend of the failed attempt
	Attempt int    // the failed attempt's number, 1 for the first
	Err     error  // its error
	// Budgeted says the budget allowed the retry; false means it was spent and the request
	// ends with Err.
	Budgeted bool
}

// HedgeInfo describes a hedged attempt as it is sent, for Hooks.OnHedge.
type HedgeInfo struct {
	Backend string        // the backend the hedge goes to
	Primary string        // the backend of the attempt still in flight
	Delay   time.Duration // how long the first attempt had been running
}

// requestStarted counts a request and deposits it in the budgets.
func (b *Balancer[T]) requestStarted() {
	b.counters.requests.Add(1)
	b.retry.request()
	b.hedge.budget.request()
}

// mayRetry asks the budget for a retry after a failed attempt, counts the answer and reports
// it to Hooks.OnRetry.
func (b *Balancer[T]) mayRetry(ctx context.Context, backend string, attempt int, err error) bool {
	ok := b.retry.withdraw()
	if ok {
		b.counters.retries.Add(1)
	} else {
		b.counters.exhausted.Add(1)
	}
	if f := b.set.hooks.OnRetry; f != nil {
		f(ctx, RetryInfo{Backend: backend, Attempt: attempt, Err: err, Budgeted: ok})
	}
	return ok
}
