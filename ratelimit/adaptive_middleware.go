package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// AdaptiveMiddlewareOptions configures AdaptiveMiddleware. The zero value answers a shed
// request with 503 and Retry-After: 1, and classifies responses by ClassifyStatus.
type AdaptiveMiddlewareOptions struct {
	// RetryAfter is the Retry-After a shed request gets, rounded up to whole seconds; 0 means
	// 1 s.
	RetryAfter time.Duration
	// OnShed writes the response to a shed request after Retry-After is set; nil means status
	// 503 with a one-line text body.
	OnShed http.Handler
	// Classify turns a handled request's status code into the Outcome the limiter learns from;
	// nil means ClassifyStatus. A request whose ctx was canceled (the client went away) is
	// Ignore whatever Classify says.
	Classify func(r *http.Request, status int) Outcome
}

// Validate reports every problem with o, or nil.
func (o *AdaptiveMiddlewareOptions) Validate() error {
	if o.RetryAfter < 0 {
		return fmt.Errorf("ratelimit: AdaptiveMiddlewareOptions.RetryAfter %v is negative", o.RetryAfter)
	}
	return nil
}

// ClassifyStatus is the default classification of AdaptiveMiddleware: 503 Service Unavailable
// and 504 Gateway Timeout are Dropped (the handler or what it called was overloaded), 429 is
// Ignore (a rate limit in front of the limiter said no; nothing was measured), and everything
// else is Success: a 404 or a 500 took as long as it took.
func ClassifyStatus(_ *http.Request, status int) Outcome {
	switch status {
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return Dropped
	case http.StatusTooManyRequests:
		return Ignore
	default:
		return Success
	}
}

// AdaptiveMiddleware returns HTTP middleware that admits each request through a: an admitted
// request reaches the next handler and its latency and status feed the limit; a shed one gets
// Retry-After and, by default, 503 Service Unavailable. A request whose ctx ends while it waits
// in the queue gets 503 too, without Retry-After (its client has gone or given up).
//
// Cost per request: Acquire and done, and one small allocation to record the status code.
func AdaptiveMiddleware(a *Adaptive, o AdaptiveMiddlewareOptions) (func(http.Handler) http.Handler, error) {
	if a == nil {
		return nil, errors.New("ratelimit: AdaptiveMiddleware: nil *Adaptive")
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = time.Second
	}
	retryAfter := strconv.FormatInt(int64((o.RetryAfter+time.Second-1)/time.Second), 10)
	if o.OnShed == nil {
		o.OnShed = http.HandlerFunc(adaptiveUnavailable)
	}
	if o.Classify == nil {
		o.Classify = ClassifyStatus
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			done, err := a.Acquire(r.Context())
			if err != nil {
				if errors.Is(err, ErrLimitExceeded) {
					w.Header().Set("Retry-After", retryAfter)
					o.OnShed.ServeHTTP(w, r)
					return
				}
				adaptiveUnavailable(w, r)
				return
			}
			sw := &adaptiveStatusWriter{ResponseWriter: w}
			outcome := Ignore
			defer func() { done(outcome) }()
			next.ServeHTTP(sw, r)
			if errors.Is(r.Context().Err(), context.Canceled) {
				return
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			outcome = o.Classify(r, status)
		})
	}, nil
}

func adaptiveUnavailable(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "service overloaded", http.StatusServiceUnavailable)
}

// adaptiveStatusWriter records the status code a handler writes.
type adaptiveStatusWriter struct {
	http.ResponseWriter
	status int
}

func (w *adaptiveStatusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *adaptiveStatusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush, Hijack, deadlines).
func (w *adaptiveStatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
