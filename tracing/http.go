package tracing

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// Middleware returns a handler that continues the caller's trace (from traceparent and
// tracestate) or starts a new one, runs next inside a server span, and ends the span with the
// response status. The span is named after the method and, once next has routed the request
// through an http.ServeMux, its pattern ("GET /users/{id}"); a status of 500 or more marks it as
// an error, and so does a panic, which is recorded and passed on.
func (t *Tracer) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := Extract(r.Context(), r.Header)
		ctx, span := t.Start(ctx, r.Method, WithSpanKind(SpanKindServer), WithAttributes(
			String("http.request.method", r.Method),
			String("url.path", r.URL.Path),
		))
		r = r.WithContext(ctx)
		if !span.IsRecording() {
			defer span.End()
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				span.SetStatus(StatusError, fmt.Sprint("panic: ", v))
				span.End()
				panic(v)
			}
			if route := patternRoute(r.Pattern); route != "" {
				span.SetName(r.Method + " " + route)
				span.SetAttributes(String("http.route", route))
			}
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			span.SetAttributes(Int("http.response.status_code", code))
			if code >= 500 {
				span.SetStatus(StatusError, http.StatusText(code))
			}
			span.End()
		}()
		next.ServeHTTP(sw, r)
	})
}

// patternRoute returns the path part of a ServeMux pattern: "GET /users/{id}" gives
// "/users/{id}".
func patternRoute(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return strings.TrimLeft(pattern[i+1:], " \t")
	}
	return pattern
}

// statusWriter remembers the status code; Unwrap lets http.ResponseController reach the
// original writer's Flush, Hijack and deadlines.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes on to the original writer, for handlers that check for http.Flusher.
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Transport returns an http.RoundTripper that runs each request in a client span and sends the
// trace along in traceparent and tracestate; base nil means http.DefaultTransport. The span ends
// when the response body is read to its end or closed, so it covers the whole exchange; a failed
// request or body read ends it with the error, and a status of 400 or more marks it as an error.
// As net/http requires anyway, close every response body, or the span never ends. The caller's
// request is not modified.
func (t *Tracer) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, base: base}
}

type transport struct {
	t    *Tracer
	base http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := tr.t.Start(req.Context(), req.Method, WithSpanKind(SpanKindClient), WithAttributes(
		String("http.request.method", req.Method),
		String("server.address", req.URL.Host),
		String("url.path", req.URL.Path),
	))
	out := req.Clone(ctx)
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	Inject(ctx, out.Header)
	resp, err := tr.base.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(StatusError, err.Error())
		span.End()
		return nil, err
	}
	span.SetAttributes(Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(StatusError, http.StatusText(resp.StatusCode))
	}
	switch body := resp.Body.(type) {
	case nil:
		span.End()
	case io.ReadWriteCloser:
		// A 101 Switching Protocols response: the caller writes to the body too.
		resp.Body = &spanReadWriteBody{spanBody{ReadCloser: body, span: span}, body}
	default:
		if body == http.NoBody || !span.IsRecording() {
			span.End() // nothing to wait for, or nothing to record
		} else {
			resp.Body = &spanBody{ReadCloser: body, span: span}
		}
	}
	return resp, nil
}

// spanBody ends the client span when the response body is read to its end, fails, or is closed.
type spanBody struct {
	io.ReadCloser
	span  *Span
	ended atomic.Bool
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.end(nil)
	case err != nil:
		b.end(err)
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.end(nil)
	return err
}

// end ends the span once, recording err if the body could not be read.
func (b *spanBody) end(err error) {
	if b.ended.Swap(true) {
		return
	}
	if err != nil {
		b.span.RecordError(err)
		b.span.SetStatus(StatusError, err.Error())
	}
	b.span.End()
}

// spanReadWriteBody is a spanBody that keeps the writer of a protocol switch.
type spanReadWriteBody struct {
	spanBody
	w io.Writer
}

func (b *spanReadWriteBody) Write(p []byte) (int, error) { return b.w.Write(p) }
