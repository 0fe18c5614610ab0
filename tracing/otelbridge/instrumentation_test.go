package otelbridge_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/girder-go/girder/internal/testenv"
	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// collector is an OTLP/HTTP endpoint that keeps the request bodies.
type collector struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	c.mu.Unlock()
}

// spans decodes every body with the OpenTelemetry Collector's OTLP/JSON unmarshaler.
func (c *collector) spans(t *testing.T) map[string]ptrace.Span {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]ptrace.Span{}
	var u ptrace.JSONUnmarshaler
	for _, b := range c.bodies {
		td, err := u.UnmarshalTraces(b)
		require.NoError(t, err, "%s", b)
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					out[ss.Scope().Name()+" "+s.Name()] = s
				}
			}
		}
	}
	return out
}

// OpenTelemetry's own instrumentation (otelhttp on both sides, redisotel against a real Redis)
// records through girder's provider, in one trace with girder's own spans.
func TestInstrumentationThroughGirder(t *testing.T) {
	col := &collector{}
	colSrv := httptest.NewServer(col)
	defer colSrv.Close()
	exp, err := tracing.NewOTLPExporter(tracing.OTLPOptions{URL: colSrv.URL + "/v1/traces", ServiceName: "test"})
	require.NoError(t, err)
	proc, err := tracing.NewSyncProcessor(exp, nil)
	require.NoError(t, err)
	tracer, err := tracing.New(tracing.Options{Name: "app", Processors: []tracing.Processor{proc}})
	require.NoError(t, err)
	provider := otelbridge.NewTracerProvider(tracer)
	prop := otelbridge.TraceContext{}

	rdb := testenv.StartRedis(t).Client(t)
	require.NoError(t, redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(provider)))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracer.Start(r.Context(), "load user")
		defer span.End()
		if err := rdb.Set(ctx, "user:"+r.PathValue("id"), "ada", 0).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		name, _ := rdb.Get(ctx, "user:"+r.PathValue("id")).Result()
		io.WriteString(w, name)
	})
	srv := httptest.NewServer(otelhttp.NewHandler(mux, "server",
		otelhttp.WithTracerProvider(provider), otelhttp.WithPropagators(prop)))
	defer srv.Close()
	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(provider), otelhttp.WithPropagators(prop))}

	ctx, root := tracer.Start(context.Background(), "checkout")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/users/7", nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "ada", string(body))
	root.End()
	require.NoError(t, tracer.Shutdown(context.Background()))

	spans := col.spans(t)
	names := make([]string, 0, len(spans))
	for n := range spans {
		names = append(names, n)
	}
	find := func(scope string, kind ptrace.SpanKind) ptrace.Span {
		t.Helper()
		for n, s := range spans {
			if s.Kind() == kind && len(n) > len(scope) && n[:len(scope)] == scope {
				return s
			}
		}
		t.Fatalf("no %v span of scope %s among %q", kind, scope, names)
		return ptrace.Span{}
	}
	const otelhttpScope = "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	const redisScope = "github.com/redis/go-redis/extra/redisotel"
	checkout := spans["app checkout"]
	clientSpan := find(otelhttpScope, ptrace.SpanKindClient)
	serverSpan := find(otelhttpScope, ptrace.SpanKindServer)
	load := spans["app load user"]
	set, get := spans[redisScope+" set"], spans[redisScope+" get"]

	chain := []struct {
		name          string
		child, parent ptrace.Span
	}{
		{"otelhttp client under girder's root", clientSpan, checkout},
		{"otelhttp server under the client, across HTTP", serverSpan, clientSpan},
		{"girder's handler span under otelhttp's server span", load, serverSpan},
		{"redisotel set under girder's span", set, load},
		{"redisotel get under girder's span", get, load},
	}
	for _, c := range chain {
		assert.Equal(t, c.parent.SpanID(), c.child.ParentSpanID(), c.name)
		assert.Equal(t, checkout.TraceID(), c.child.TraceID(), c.name)
		assert.False(t, c.child.SpanID().IsEmpty(), c.name)
	}
	assert.True(t, checkout.ParentSpanID().IsEmpty())
	assert.Equal(t, "GET", serverSpan.Attributes().AsRaw()["http.request.method"])
	assert.Equal(t, "redis", get.Attributes().AsRaw()["db.system"])
}
