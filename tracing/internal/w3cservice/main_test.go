package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/girder-go/girder/tracing"
	"github.com/girder-go/girder/tracing/otelbridge"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each callback continues the caller's trace in a span of its own, with the trace state intact.
func TestServiceCallsBackWithTheTrace(t *testing.T) {
	tracer, err := tracing.New(tracing.Options{})
	require.NoError(t, err)
	apis := map[string]propagator{
		"girder": girderAPI{tracer},
		"otel":   otelAPI{provider: otelbridge.NewTracerProvider(tracer)},
	}
	for name, p := range apis {
		t.Run(name, func(t *testing.T) {
			var got []http.Header
			harness := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = append(got, r.Header.Clone())
			}))
			defer harness.Close()
			svc := httptest.NewServer(handler(p))
			defer svc.Close()

			body := `[{"url":"` + harness.URL + `","arguments":[]},{"url":"` + harness.URL + `","arguments":[]}]`
			req, err := http.NewRequest(http.MethodPost, svc.URL, strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("traceparent", "00-12345678901234567890123456789012-1234567890123456-03")
			req.Header.Add("tracestate", "foo@@bar=1")
			req.Header.Add("tracestate", "foo@@bar=2,b=3")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)

			require.Len(t, got, 2)
			parents := map[string]bool{}
			for _, h := range got {
				sc, err := tracing.ParseTraceparent(h.Get("traceparent"))
				require.NoError(t, err)
				assert.Equal(t, "12345678901234567890123456789012", sc.TraceID.String())
				assert.Equal(t, tracing.FlagSampled|tracing.FlagRandom, sc.Flags)
				assert.Equal(t, "foo@@bar=1,b=3", h.Get("tracestate"))
				parents[sc.SpanID.String()] = true
			}
			assert.Len(t, parents, 2, "one parent ID per callback")
			assert.NotContains(t, parents, "1234567890123456")
		})
	}
}
