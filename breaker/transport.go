package breaker

import (
	"fmt"
	"net/http"
)

// Transport is an http.RoundTripper that sends requests through a Breaker: while the breaker is
// open, requests fail at once with an error matching ErrOpen and never reach the server.
//
// A response is a failure when IsFailure says so; by default, when the status is 500 or above.
// A failing response is still returned to the caller (the breaker records a *StatusError).
type Transport struct {
	Breaker *Breaker
	// Base makes the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// IsFailure reports whether a response counts as a failure of the server; nil means
	// resp.StatusCode >= 500. It is not consulted when the round trip returned an error.
	IsFailure func(resp *http.Response) bool
}

// StatusError is what a Transport records for a response that IsFailure rejected, so that
// Options.IsFailure and hooks can tell a failing status from a transport error.
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("breaker: server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Breaker == nil {
		closeBody(req)
		return nil, ErrNilBreaker
	}
	done, err := t.Breaker.Allow(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	switch {
	case err != nil:
		done(err)
	case t.failed(resp):
		done(&StatusError{StatusCode: resp.StatusCode})
	default:
		done(nil)
	}
	return resp, err
}

func (t *Transport) failed(resp *http.Response) bool {
	if t.IsFailure != nil {
		return t.IsFailure(resp)
	}
	return resp.StatusCode >= http.StatusInternalServerError
}

// closeBody honours the RoundTripper contract: the request body is closed even on error.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
