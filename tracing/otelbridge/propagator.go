package otelbridge

import (
	"context"
	"net/http"

	"github.com/girder-go/girder/tracing"
	"go.opentelemetry.io/otel/propagation"
)

// TraceContext is an OpenTelemetry propagation.TextMapPropagator for W3C Trace Context built on
// girder's Inject and Extract: tracestate at Level 2, repeated header lines read through
// propagation.HeaderCarrier (or any carrier with Values). The context Extract returns holds the
// remote span for both APIs. The zero value is ready to use.
type TraceContext struct{}

var _ propagation.TextMapPropagator = TraceContext{}

// Inject writes traceparent and tracestate for the innermost span in ctx of either API.
func (TraceContext) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	ctx = girderContext(ctx)
	if hc, ok := carrier.(propagation.HeaderCarrier); ok {
		tracing.Inject(ctx, http.Header(hc))
		return
	}
	tracing.Inject(ctx, carrier)
}

// Extract reads traceparent and tracestate and returns a copy of ctx holding the remote span
// context, for both APIs; ctx unchanged when there is no valid traceparent.
func (TraceContext) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	var gctx context.Context
	switch c := carrier.(type) {
	case propagation.HeaderCarrier:
		gctx = tracing.Extract(ctx, http.Header(c))
	case propagation.ValuesGetter:
		gctx = tracing.Extract(ctx, valuesCarrier{carrier, c})
	default:
		gctx = tracing.Extract(ctx, carrier)
	}
	if gctx == ctx {
		return ctx
	}
	return &span{scope: remoteScope, g: tracing.SpanFromContext(gctx)}
}

// Fields returns the header names TraceContext writes.
func (TraceContext) Fields() []string {
	return []string{tracing.TraceparentHeader, tracing.TracestateHeader}
}

// valuesCarrier reads a carrier with repeated values as an http.Header would be read: one
// traceparent or none, every tracestate line.
type valuesCarrier struct {
	propagation.TextMapCarrier
	v propagation.ValuesGetter
}

func (c valuesCarrier) Get(key string) string {
	vals := c.v.Values(key)
	switch {
	case len(vals) == 0:
		return ""
	case key == tracing.TraceparentHeader && len(vals) > 1:
		return "" // repeated traceparent: invalid
	}
	joined := vals[0]
	for _, v := range vals[1:] {
		joined += "," + v
	}
	return joined
}
