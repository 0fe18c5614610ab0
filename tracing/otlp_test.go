package tracing

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// otlpRequest mirrors the OTLP JSON that a collector decodes.
type otlpRequest struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []otlpKV `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Scope struct {
				Name string `json:"name"`
			} `json:"scope"`
			Spans []otlpSpan `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type otlpKV struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

type otlpSpan struct {
	TraceID           string   `json:"traceId"`
	SpanID            string   `json:"spanId"`
	ParentSpanID      string   `json:"parentSpanId"`
	TraceState        string   `json:"traceState"`
	Flags             uint32   `json:"flags"`
	Name              string   `json:"name"`
	Kind              int      `json:"kind"`
	StartTimeUnixNano string   `json:"startTimeUnixNano"`
	EndTimeUnixNano   string   `json:"endTimeUnixNano"`
	Attributes        []otlpKV `json:"attributes"`
	DroppedAttributes int      `json:"droppedAttributesCount"`
	Events            []struct {
		TimeUnixNano string   `json:"timeUnixNano"`
		Name         string   `json:"name"`
		Attributes   []otlpKV `json:"attributes"`
		Dropped      int      `json:"droppedAttributesCount"`
	} `json:"events"`
	DroppedEvents int `json:"droppedEventsCount"`
	Status        struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
}

// collector is an httptest OTLP/HTTP endpoint that answers with the given statuses in turn
// (then 200) and keeps every request it decoded.
type collector struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []otlpRequest
	headers  []http.Header
	answers  []int
	calls    atomic.Int64
}

func newCollector(t *testing.T, answers ...int) *collector {
	c := &collector{answers: answers}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(c.calls.Add(1))
		if n <= len(c.answers) && c.answers[n-1] != http.StatusOK {
			http.Error(w, "try later", c.answers[n-1])
			return
		}
		var req otlpRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Errorf("collector: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.requests = append(c.requests, req)
		c.headers = append(c.headers, r.Header.Clone())
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"partialSuccess":{}}`)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) spans() []otlpSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []otlpSpan
	for _, r := range c.requests {
		for _, rs := range r.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				all = append(all, ss.Spans...)
			}
		}
	}
	return all
}

func TestOTLPCollectorReceivesBatches(t *testing.T) {
	c := newCollector(t)
	exp, err := NewOTLPExporter(OTLPOptions{
		URL: c.srv.URL + "/v1/traces", Headers: map[string]string{"Authorization": "Bearer x"},
		ServiceName: "checkout", Resource: []Attr{String("service.version", "1.2.3"), String("service.name", "ignored")},
	})
	require.NoError(t, err)
	bp, err := NewBatchProcessor(exp, BatchOptions{MaxBatchSize: 5, BatchTimeout: time.Hour})
	require.NoError(t, err)
	mem := &InMemoryExporter{}
	sp, err := NewSyncProcessor(mem, nil)
	require.NoError(t, err)
	tr, err := New(Options{Name: "shop", Sampler: AlwaysSample(), Processors: []Processor{bp, sp}})
	require.NoError(t, err)

	ctx, parent := tr.Start(context.Background(), "parent", WithSpanKind(SpanKindServer))
	for i := range 11 {
		_, child := tr.Start(ctx, "child "+strconv.Itoa(i), WithSpanKind(SpanKindClient),
			WithAttributes(Int("i", i), Float64("f", 0.5), Bool("b", true), String("s", "x")))
		child.AddEvent("retry", Int("attempt", 2))
		child.SetStatus(StatusError, "boom")
		child.End()
	}
	parent.End()
	require.NoError(t, tr.Shutdown(context.Background()))

	require.Equal(t, int64(3), c.calls.Load(), "12 spans in batches of 5")
	assert.Equal(t, "application/json", c.headers[0].Get("Content-Type"))
	assert.Equal(t, "Bearer x", c.headers[0].Get("Authorization"))
	res := c.requests[0].ResourceSpans[0]
	assert.Equal(t, []otlpKV{
		{"service.name", map[string]any{"stringValue": "checkout"}},
		{"service.version", map[string]any{"stringValue": "1.2.3"}},
	}, res.Resource.Attributes)
	assert.Equal(t, "shop", res.ScopeSpans[0].Scope.Name)

	got := c.spans()
	want := mem.Spans()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		assert.Equal(t, w.SpanContext.TraceID.String(), g.TraceID)
		assert.Equal(t, w.SpanContext.SpanID.String(), g.SpanID)
		assert.Equal(t, w.Name, g.Name)
		assert.Equal(t, int(w.Kind)+1, g.Kind)
		assert.Equal(t, strconv.FormatInt(w.Start.UnixNano(), 10), g.StartTimeUnixNano)
		assert.Equal(t, strconv.FormatInt(w.End.UnixNano(), 10), g.EndTimeUnixNano)
		assert.Equal(t, uint32(0x101), g.Flags)
		if w.Parent.IsValid() {
			assert.Equal(t, w.Parent.SpanID.String(), g.ParentSpanID)
			assert.Equal(t, []otlpKV{
				{"i", map[string]any{"intValue": strconv.Itoa(i)}},
				{"f", map[string]any{"doubleValue": 0.5}},
				{"b", map[string]any{"boolValue": true}},
				{"s", map[string]any{"stringValue": "x"}},
			}, g.Attributes)
			require.Len(t, g.Events, 1)
			assert.Equal(t, strconv.FormatInt(w.Events[0].Time.UnixNano(), 10), g.Events[0].TimeUnixNano)
			assert.Equal(t, 2, g.Status.Code)
			assert.Equal(t, "boom", g.Status.Message)
		} else {
			assert.Empty(t, g.ParentSpanID)
		}
	}
}

func TestOTLPRetries(t *testing.T) {
	tests := []struct {
		name      string
		answers   []int
		attempts  int
		wantCalls int64
		wantErr   bool
		retryable bool
	}{
		{"503 twice, then accepted", []int{503, 503}, 5, 3, false, false},
		{"429, 502, 504 are retried", []int{429, 502, 504}, 5, 4, false, false},
		{"gives up after MaxAttempts", []int{503, 503, 503}, 2, 2, true, true},
		{"400 is not retried", []int{400}, 5, 1, true, false},
		{"500 is not retried", []int{500}, 5, 1, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(t, tt.answers...)
			exp, err := NewOTLPExporter(OTLPOptions{URL: c.srv.URL, MaxAttempts: tt.attempts, Retry: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}})
			require.NoError(t, err)
			err = exp.ExportSpans(context.Background(), []SpanData{sampleSpanData(t)})
			assert.Equal(t, tt.wantCalls, c.calls.Load())
			if !tt.wantErr {
				require.NoError(t, err)
				assert.Len(t, c.spans(), 1)
				return
			}
			var se *HTTPStatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.answers[len(tt.answers)-1], se.StatusCode)
			assert.Equal(t, tt.retryable, se.Retryable)
			assert.Contains(t, se.Body, "try later")
		})
	}
}

func TestOTLPCollectorDown(t *testing.T) {
	c := newCollector(t)
	c.srv.Close()
	exp, err := NewOTLPExporter(OTLPOptions{URL: c.srv.URL, MaxAttempts: 3, Retry: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	require.NoError(t, err)
	err = exp.ExportSpans(context.Background(), []SpanData{sampleSpanData(t)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "OTLP export of 1 spans")
	require.NoError(t, exp.ExportSpans(context.Background(), nil), "nothing to send")
	require.NoError(t, exp.Shutdown(context.Background()))
	require.ErrorIs(t, exp.ExportSpans(context.Background(), []SpanData{{}}), ErrClosed)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func unavailable(header http.Header) roundTripFunc {
	return func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 503, Header: header, Body: io.NopCloser(strings.NewReader("busy")), Request: r}, nil
	}
}

func TestOTLPBackoffHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exp, err := NewOTLPExporter(OTLPOptions{URL: "http://collector.invalid/v1/traces",
			Client: &http.Client{Transport: unavailable(nil)}, Retry: Backoff{Initial: 10 * time.Second, Max: 10 * time.Second}})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err = exp.ExportSpans(ctx, []SpanData{sampleSpanData(t)})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start))
	})
}

func TestOTLPHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time
		base := unavailable(http.Header{"Retry-After": {"3"}})
		exp, err := NewOTLPExporter(OTLPOptions{URL: "http://collector.invalid/v1/traces", MaxAttempts: 2,
			Client: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				times = append(times, time.Now())
				return base(r)
			})},
			Retry: Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}})
		require.NoError(t, err)
		require.Error(t, exp.ExportSpans(context.Background(), []SpanData{sampleSpanData(t)}))
		require.Len(t, times, 2)
		assert.Equal(t, 3*time.Second, times[1].Sub(times[0]))
	})
}

func TestNewOTLPExporterValidates(t *testing.T) {
	tests := []struct {
		name string
		opts OTLPOptions
		want []string
	}{
		{"no URL", OTLPOptions{}, []string{"URL"}},
		{"not http", OTLPOptions{URL: "ftp://x/v1/traces"}, []string{"URL"}},
		{"everything wrong", OTLPOptions{URL: "::", MaxAttempts: -1, Retry: Backoff{Initial: -1}, Resource: []Attr{{}}},
			[]string{"URL", "MaxAttempts", "tracing: Retry.Initial", "Resource[0]"}},
		{"bad multiplier and jitter", OTLPOptions{URL: "http://x", Retry: Backoff{Multiplier: 0.5, Jitter: 2}}, []string{"tracing: Retry.Multiplier", "tracing: Retry.Jitter"}},
		{"initial over max", OTLPOptions{URL: "http://x", Retry: Backoff{Initial: time.Second, Max: time.Millisecond}}, []string{"exceeds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewOTLPExporter(tt.opts)
			assert.Equal(t, tt.opts.Validate(), err)
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}

func TestAppendOTLPGroupsByScope(t *testing.T) {
	spans := []SpanData{{Name: "a1", Scope: "a"}, {Name: "b1", Scope: "b"}, {Name: "a2", Scope: "a"}}
	var req otlpRequest
	require.NoError(t, json.Unmarshal(appendOTLP(nil, nil, spans), &req))
	require.Len(t, req.ResourceSpans, 1)
	ss := req.ResourceSpans[0].ScopeSpans
	require.Len(t, ss, 2)
	assert.Equal(t, "a", ss[0].Scope.Name)
	assert.Equal(t, []string{"a1", "a2"}, []string{ss[0].Spans[0].Name, ss[0].Spans[1].Name})
	assert.Equal(t, "b", ss[1].Scope.Name)
}
