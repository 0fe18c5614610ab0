package lb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// defaultProxyHedge is ProxyOptions.Hedge when nil: the methods that only read.
func defaultProxyHedge(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

type proxyResult[T any] struct {
	resp    *http.Response
	err     error
	lease   Lease[T]
	latency time.Duration
	failed  bool
	hedge   bool
}

// hedged sends a request without a body as Do sends a hedged call: a second attempt to another
// backend when the first has not answered after the hedge delay, the first answer that is not
// a failure returned, the other attempt canceled and its lease ended with context.Canceled;
// a failure with nothing else in flight is retried as RoundTrip retries.
func (t *proxyTransport[T]) hedged(req *http.Request, key string) (*http.Response, error) {
	h := proxyHedge[T]{t: t, req: req, key: key, results: make(chan proxyResult[T], t.attempts)}
	cancels := make(map[*state]context.CancelCauseFunc, 2) // each attempt's, by backend
	var triedBuf [4]*state
	tried, first, err := h.launch(cancels, triedBuf[:0], false)
	if err != nil {
		return nil, err
	}
	var timerC <-chan time.Time
	started := time.Now()
	if d, ok := t.b.hedge.after(); ok {
		tm := time.NewTimer(d)
		defer tm.Stop()
		timerC = tm.C
	}
	var lastErr error
	for {
		select {
		case r := <-h.results:
			h.inflight--
			if !h.retryable(r) {
				return h.answer(cancels, r)
			}
			lastErr = attemptError(r.resp, r.err)
			discard(r.resp)
			r.lease.Done(lastErr, r.latency)
			if h.inflight > 0 {
				continue // the other attempt may still answer
			}
			if tried, _, err = h.launch(cancels, tried, false); err != nil {
				return nil, fmt.Errorf("%w (after: %w)", err, lastErr)
			}
		case <-timerC:
			timerC = nil
			tried = h.hedge(cancels, tried, first.m.name, started)
		}
	}
}

// proxyHedge is the state of one hedged proxy request, owned by RoundTrip's goroutine. The
// backends tried and the attempts' cancel funcs are passed alongside, so that they stay on its
// stack.
type proxyHedge[T any] struct {
	t                  *proxyTransport[T]
	req                *http.Request
	key                string
	results            chan proxyResult[T]
	launched, inflight int
}

// launch picks a backend not in tried, sends an attempt to it on its own goroutine and returns
// tried with it.
func (h *proxyHedge[T]) launch(cancels map[*state]context.CancelCauseFunc, tried []*state, hedge bool) ([]*state, Lease[T], error) {
	t := h.t
	l, err := t.b.pick(h.key, h.key != "", tried)
	if err != nil {
		return tried, l, err
	}
	actx, cancel := context.WithCancelCause(h.req.Context())
	out, err := t.outgoing(h.req.WithContext(actx), l.m, requestBody{length: h.req.ContentLength}, 0)
	if err != nil {
		cancel(err)
		l.Done(nil, 0)
		return tried, l, err
	}
	cancels[l.m.st] = cancel
	h.launched++
	h.inflight++
	go t.roundTripAttempt(out, l, hedge, h.results)
	return append(tried, l.m.st), l, nil
}

// roundTripAttempt sends one attempt and its result.
func (t *proxyTransport[T]) roundTripAttempt(out *http.Request, l Lease[T], hedge bool, results chan<- proxyResult[T]) {
	start := time.Now()
	resp, err := t.next.RoundTrip(out)
	results <- proxyResult[T]{resp: resp, err: err, lease: l, latency: time.Since(start),
		failed: t.isFailure(resp, err), hedge: hedge}
}

// retryable reports whether r is a failure after which the request goes on: another attempt
// is in flight, or a retry is allowed (attempts left, ctx live, budget willing).
func (h *proxyHedge[T]) retryable(r proxyResult[T]) bool {
	if !r.failed {
		return false
	}
	if h.inflight > 0 {
		return true
	}
	ctx := h.req.Context()
	return h.launched < h.t.attempts && ctx.Err() == nil &&
		h.t.b.mayRetry(ctx, r.lease.m.name, h.launched, attemptError(r.resp, r.err))
}

// answer returns r as the request's response: the other attempts are canceled and drained,
// and r's lease ends when its body is closed.
func (h *proxyHedge[T]) answer(cancels map[*state]context.CancelCauseFunc, r proxyResult[T]) (*http.Response, error) {
	b := h.t.b
	if !r.failed {
		b.hedge.observe(r.latency)
		if r.hedge {
			b.counters.hedgesWon.Add(1)
		}
	}
	for st, cancel := range cancels {
		if st != r.lease.m.st {
			cancel(ErrHedgeLost)
		}
	}
	if h.inflight > 0 {
		go drainLosers(h.results, h.inflight)
	}
	if r.err != nil {
		r.lease.Done(r.err, r.latency)
		return nil, r.err
	}
	var outcome error
	if r.failed {
		outcome = attemptError(r.resp, nil)
	}
	if r.resp.StatusCode == http.StatusSwitchingProtocols {
		r.lease.Done(outcome, r.latency)
		return r.resp, nil
	}
	r.resp.Body = &leaseBody[T]{ReadCloser: r.resp.Body, lease: r.lease, err: outcome, latency: r.latency}
	return r.resp, nil
}

// hedge sends a hedge when the request has attempts left and the hedge budget allows one,
// reports it to Hooks.OnHedge, and returns tried with its backend.
func (h *proxyHedge[T]) hedge(cancels map[*state]context.CancelCauseFunc, tried []*state, primary string, started time.Time) []*state {
	b := h.t.b
	if h.launched >= h.t.attempts || !b.hedge.budget.withdraw() {
		return tried
	}
	tried, l, err := h.launch(cancels, tried, true)
	if err != nil {
		return tried
	}
	b.counters.hedges.Add(1)
	if f := b.set.hooks.OnHedge; f != nil {
		f(h.req.Context(), HedgeInfo{Backend: l.m.name, Primary: primary, Delay: time.Since(started)})
	}
	return tried
}

// drainLosers ends the attempts still in flight after another one won: their responses are
// discarded and their leases end with context.Canceled.
func drainLosers[T any](results <-chan proxyResult[T], n int) {
	for range n {
		r := <-results
		discard(r.resp)
		r.lease.Done(context.Canceled, 0)
	}
}

func discard(resp *http.Response) {
	if resp != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
}
