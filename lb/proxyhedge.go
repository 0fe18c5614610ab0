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
	ctx := req.Context()
	results := make(chan proxyResult[T], t.attempts)
	var triedBuf [4]*state
	tried := triedBuf[:0]
	cancels := make(map[*state]context.CancelCauseFunc, 2)
	launched, inflight := 0, 0
	launch := func(hedge bool) (Lease[T], error) {
		l, err := t.b.pick(key, key != "", tried)
		if err != nil {
			return l, err
		}
		actx, cancel := context.WithCancelCause(ctx)
		out, err := t.outgoing(req.WithContext(actx), l.m, requestBody{length: req.ContentLength}, 0)
		if err != nil {
			cancel(err)
			l.Done(nil, 0)
			return l, err
		}
		tried = append(tried, l.m.st)
		cancels[l.m.st] = cancel
		launched++
		inflight++
		go func() {
			start := time.Now()
			resp, err := t.next.RoundTrip(out)
			results <- proxyResult[T]{resp: resp, err: err, lease: l, latency: time.Since(start),
				failed: t.isFailure(resp, err), hedge: hedge}
		}()
		return l, nil
	}
	first, err := launch(false)
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
		case r := <-results:
			inflight--
			if r.failed && (inflight > 0 || (launched < t.attempts && ctx.Err() == nil &&
				t.b.mayRetry(ctx, r.lease.m.name, launched, attemptError(r.resp, r.err)))) {
				lastErr = attemptError(r.resp, r.err)
				discard(r.resp)
				r.lease.Done(lastErr, r.latency)
				if inflight > 0 {
					continue
				}
				if _, err := launch(false); err != nil {
					return nil, fmt.Errorf("%w (after: %w)", err, lastErr)
				}
				continue
			}
			if !r.failed {
				t.b.hedge.observe(r.latency)
				if r.hedge {
					t.b.counters.hedgesWon.Add(1)
				}
			}
			for st, cancel := range cancels {
				if st != r.lease.m.st {
					cancel(errHedgeLost)
				}
			}
			if inflight > 0 {
				go drainLosers(results, inflight)
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
		case <-timerC:
			timerC = nil
			if launched >= t.attempts || !t.b.hedge.budget.withdraw() {
				continue
			}
			l, err := launch(true)
			if err != nil {
				continue
			}
			t.b.counters.hedges.Add(1)
			if f := t.b.set.hooks.OnHedge; f != nil {
				f(ctx, HedgeInfo{Backend: l.m.name, Primary: first.m.name, Delay: time.Since(started)})
			}
		}
	}
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
