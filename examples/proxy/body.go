package main

import (
	"bytes"
	"io"
	"net/http"
)

// replayable lets lb's proxy retry requests that carry a body. lb retries only an idempotent
// request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any request with an Idempotency-Key
// header) whose body it can send again, that is one with GetBody set, and a request a server
// receives never has it. So this middleware reads such a request's body, when it is at most
// max bytes, into memory and sets GetBody; a larger body streams through and the request gets
// one attempt only. Non-idempotent requests (a POST without a key) are never buffered: they are
// not retried anyway.
func replayable(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if max <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength > max || !retryable(r) {
			next.ServeHTTP(w, r)
			return
		}
		buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
		if err != nil {
			http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if int64(len(buf)) > max { // a chunked body that turned out too big: stream the rest
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
			next.ServeHTTP(w, r)
			return
		}
		r.Body.Close()
		r.ContentLength = int64(len(buf))
		r.Body = io.NopCloser(bytes.NewReader(buf))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
		next.ServeHTTP(w, r)
	})
}

// retryable mirrors the rule lb.ProxyOptions documents for Attempts.
func retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}
