package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func attrMap(attrs []Attr) map[string]Value {
	m := map[string]Value{}
	for _, a := range attrs {
		m[a.Key] = a.Value
	}
	return m
}

func TestMiddlewareContinuesTrace(t *testing.T) {
	tr, exp := newTestTracer(t, Options{Sampler: ParentBased(NeverSample())})
	mux := http.NewServeMux()
	var inner SpanContext
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		inner = SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusTeapot)
	})
	h := tr.Middleware(mux)

	req := httptest.NewRequest("GET", "/users/42", nil)
	req.Header.Set("traceparent", "00-"+validTraceID+"-"+validSpanID+"-01")
	req.Header.Set("tracestate", "vendor=1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusTeapot, rec.Code)

	d := onlySpan(t, exp)
	assert.Equal(t, "GET /users/{id}", d.Name)
	assert.Equal(t, SpanKindServer, d.Kind)
	assert.Equal(t, mustTraceID(t, validTraceID), d.SpanContext.TraceID)
	assert.Equal(t, mustSpanID(t, validSpanID), d.Parent.SpanID)
	assert.True(t, d.Parent.Remote)
	assert.Equal(t, d.SpanContext, inner, "the handler sees the server span")
	assert.Equal(t, "vendor=1", d.SpanContext.State.String())
	attrs := attrMap(d.Attributes)
	assert.Equal(t, "GET", attrs["http.request.method"].AsString())
	assert.Equal(t, "/users/42", attrs["url.path"].AsString())
	assert.Equal(t, "/users/{id}", attrs["http.route"].AsString())
	assert.Equal(t, int64(418), attrs["http.response.status_code"].AsInt64())
	assert.Equal(t, StatusUnset, d.Status.Code)
}

func TestMiddlewareStatuses(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		wantCode int64
		wantErr  bool
	}{
		{"implicit 200", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, 200, false},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, 200, false},
		{"404", http.NotFound, 404, false},
		{"503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, 503, true},
		{"1xx then 500", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(500)
		}, 500, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, Options{})
			tr.Middleware(tt.handler).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/x", nil))
			d := onlySpan(t, exp)
			assert.Equal(t, "POST", d.Name)
			assert.Equal(t, tt.wantCode, attrMap(d.Attributes)["http.response.status_code"].AsInt64())
			assert.Equal(t, tt.wantErr, d.Status.Code == StatusError)
			assert.False(t, d.Parent.IsValid(), "no traceparent: a new trace")
		})
	}
}

func TestMiddlewareRecordsPanics(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	h := tr.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	assert.PanicsWithValue(t, "kaboom", func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) })
	d := onlySpan(t, exp)
	assert.Equal(t, Status{StatusError, "panic: kaboom"}, d.Status)
}

func TestMiddlewareNotSampledStillPropagates(t *testing.T) {
	tr, exp := newTestTracer(t, Options{Sampler: NeverSample()})
	var sc SpanContext
	h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc = SpanContextFromContext(r.Context())
		_, ok := w.(http.Flusher)
		assert.True(t, ok)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	assert.True(t, sc.IsValid())
	assert.False(t, sc.IsSampled())
	assert.Empty(t, exp.Spans())
}

func TestPatternRoute(t *testing.T) {
	for in, want := range map[string]string{"": "", "/a/{id}": "/a/{id}", "GET /a": "/a", "POST  host.example/b": "host.example/b"} {
		assert.Equal(t, want, patternRoute(in), in)
	}
}

func TestStatusWriterUnwraps(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := &statusWriter{ResponseWriter: rec}
	assert.Same(t, rec, sw.Unwrap())
	sw.Flush()
	assert.True(t, rec.Flushed)
}

func TestTransportPropagatesToServer(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	srv := httptest.NewServer(tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	})))
	defer srv.Close()
	client := &http.Client{Transport: tr.Transport(nil)}

	ctx, parent := tr.Start(context.Background(), "caller")
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/items", nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	parent.End()
	assert.Empty(t, req.Header.Get("traceparent"), "the caller's request is not modified")

	spans := exp.Spans()
	require.Len(t, spans, 3)
	server, clientSpan, caller := spans[0], spans[1], spans[2]
	assert.Equal(t, SpanKindServer, server.Kind)
	assert.Equal(t, SpanKindClient, clientSpan.Kind)
	assert.Equal(t, caller.SpanContext.TraceID, server.SpanContext.TraceID, "one trace across the call")
	assert.Equal(t, caller.SpanContext.SpanID, clientSpan.Parent.SpanID)
	assert.Equal(t, clientSpan.SpanContext.SpanID, server.Parent.SpanID)
	assert.True(t, server.Parent.Remote)
	assert.Equal(t, int64(404), attrMap(clientSpan.Attributes)["http.response.status_code"].AsInt64())
	assert.Equal(t, StatusError, clientSpan.Status.Code)
	assert.Equal(t, srv.Listener.Addr().String(), attrMap(clientSpan.Attributes)["server.address"].AsString())
}

func TestTransportRecordsErrors(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	down := errors.New("connection refused")
	client := &http.Client{Transport: tr.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		assert.NotEmpty(t, r.Header.Get("traceparent"))
		return nil, down
	}))}
	_, err := client.Get("http://example.invalid/")
	require.ErrorIs(t, err, down)
	d := onlySpan(t, exp)
	assert.Equal(t, StatusError, d.Status.Code)
	require.Len(t, d.Events, 1)
	assert.Equal(t, "exception", d.Events[0].Name)
}

func TestTransportEndsWithTheBody(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()
	client := &http.Client{Transport: tr.Transport(nil)}

	resp, err := client.Get(srv.URL)
	require.NoError(t, err)
	assert.Empty(t, exp.Spans(), "the headers are in, the body is not")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(body))
	d := onlySpan(t, exp)
	assert.Equal(t, StatusUnset, d.Status.Code)
	require.NoError(t, resp.Body.Close())
	assert.Len(t, exp.Spans(), 1, "Close after EOF ends nothing more")

	exp.Reset()
	resp, err = client.Get(srv.URL)
	require.NoError(t, err)
	assert.Empty(t, exp.Spans())
	require.NoError(t, resp.Body.Close())
	assert.Len(t, exp.Spans(), 1, "closing an unread body ends the span")
}

type failingBody struct{ err error }

func (b failingBody) Read([]byte) (int, error) { return 0, b.err }
func (failingBody) Close() error               { return nil }

type readWriteBody struct {
	failingBody
	written []byte
}

func (b *readWriteBody) Write(p []byte) (int, error) {
	b.written = append(b.written, p...)
	return len(p), nil
}

func TestTransportBodies(t *testing.T) {
	reset := errors.New("connection reset")
	tests := []struct {
		name       string
		body       io.ReadCloser
		endsAtOnce bool
		wantStatus StatusCode
	}{
		{"no body", http.NoBody, true, StatusUnset},
		{"nil body", nil, true, StatusUnset},
		{"read fails", failingBody{reset}, false, StatusError},
		{"empty body", failingBody{io.EOF}, false, StatusUnset},
		{"protocol switch", &readWriteBody{failingBody: failingBody{io.EOF}}, false, StatusUnset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, Options{})
			rt := tr.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: http.StatusOK, Body: tt.body, Request: r}, nil
			}))
			req, err := http.NewRequest("GET", "http://example.invalid/", nil)
			require.NoError(t, err)
			resp, err := rt.RoundTrip(req)
			require.NoError(t, err)
			if tt.endsAtOnce {
				onlySpan(t, exp)
				assert.Equal(t, tt.body, resp.Body, "the body is passed on as it is")
				return
			}
			assert.Empty(t, exp.Spans())
			if w, ok := tt.body.(*readWriteBody); ok {
				rw, ok := resp.Body.(io.ReadWriteCloser)
				require.True(t, ok, "the body of a protocol switch stays writable")
				_, err := rw.Write([]byte("ping"))
				require.NoError(t, err)
				assert.Equal(t, "ping", string(w.written))
			}
			_, err = resp.Body.Read(make([]byte, 8))
			require.Error(t, err)
			d := onlySpan(t, exp)
			assert.Equal(t, tt.wantStatus, d.Status.Code)
			if tt.wantStatus == StatusError {
				assert.Equal(t, reset.Error(), d.Status.Description)
				require.Len(t, d.Events, 1)
				assert.Equal(t, "exception", d.Events[0].Name)
			}
			require.NoError(t, resp.Body.Close())
			assert.Len(t, exp.Spans(), 1)
		})
	}
}

func TestTransportNotSampledPassesTheBodyOn(t *testing.T) {
	tr, err := New(Options{Sampler: NeverSample()})
	require.NoError(t, err)
	body := failingBody{io.EOF}
	rt := tr.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		assert.NotEmpty(t, r.Header.Get("traceparent"), "the decision still travels")
		return &http.Response{StatusCode: http.StatusOK, Body: body, Request: r}, nil
	}))
	req, err := http.NewRequest("GET", "http://example.invalid/", nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, io.ReadCloser(body), resp.Body, "no wrapper when nothing is recorded")
}
