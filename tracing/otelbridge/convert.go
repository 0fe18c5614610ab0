package otelbridge

import (
	"reflect"
	"unsafe"

	"github.com/girder-go/girder/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// attributeOptionType is the dynamic type of trace.WithAttributes' option, a slice of
// attribute.KeyValue.
var attributeOptionType = reflect.TypeOf(trace.WithAttributes())

// attributeOptionIsSlice says the fast path's layout assumption holds for the OpenTelemetry
// version linked in; if a release changes the option's type, attributesOf declines and the
// option is applied through OpenTelemetry's own config instead.
var attributeOptionIsSlice = attributeOptionType.Kind() == reflect.Slice &&
	attributeOptionType.Elem() == reflect.TypeOf(attribute.KeyValue{})

// attributesOf returns the attributes of an option from trace.WithAttributes without applying
// it: OpenTelemetry's own config would copy them into a new slice first.
func attributesOf(o trace.SpanStartOption) ([]attribute.KeyValue, bool) {
	if !attributeOptionIsSlice || reflect.TypeOf(o) != attributeOptionType {
		return nil, false
	}
	// An interface holding a slice points at the slice header; the type check above makes it
	// a []attribute.KeyValue (attributeOption's underlying type).
	data := (*[2]unsafe.Pointer)(unsafe.Pointer(&o))[1]
	return *(*[]attribute.KeyValue)(data), true
}

// appendAttrs converts kvs and appends them to dst; attributes of the invalid type are left out.
func appendAttrs(dst []tracing.Attr, kvs []attribute.KeyValue) []tracing.Attr {
	for i := range kvs {
		dst = append(dst, tracing.Attr{})
		if !convertAttr(&dst[len(dst)-1], &kvs[i]) {
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

// convertAttr converts kv into *a, in place: a KeyValue is 64 bytes and an Attr 48, and copying
// them through calls costs more than converting. It reports false for the invalid type.
func convertAttr(a *tracing.Attr, kv *attribute.KeyValue) bool {
	k := string(kv.Key)
	switch kv.Value.Type() {
	case attribute.STRING:
		*a = tracing.String(k, kv.Value.AsString())
	case attribute.INT64:
		*a = tracing.Int64(k, kv.Value.AsInt64())
	case attribute.FLOAT64:
		*a = tracing.Float64(k, kv.Value.AsFloat64())
	case attribute.BOOL:
		*a = tracing.Bool(k, kv.Value.AsBool())
	case attribute.STRINGSLICE:
		*a = tracing.StringSlice(k, kv.Value.AsStringSlice())
	case attribute.INT64SLICE:
		*a = tracing.Int64Slice(k, kv.Value.AsInt64Slice())
	case attribute.FLOAT64SLICE:
		*a = tracing.Float64Slice(k, kv.Value.AsFloat64Slice())
	case attribute.BOOLSLICE:
		*a = tracing.BoolSlice(k, kv.Value.AsBoolSlice())
	default:
		return false
	}
	return true
}

// convertAttrs converts kvs into a new slice.
func convertAttrs(kvs []attribute.KeyValue) []tracing.Attr {
	if len(kvs) == 0 {
		return nil
	}
	return appendAttrs(make([]tracing.Attr, 0, len(kvs)), kvs)
}

func convertLinks(links []trace.Link) []tracing.Link {
	out := make([]tracing.Link, 0, len(links))
	for _, l := range links {
		out = append(out, tracing.Link{SpanContext: toGirder(l.SpanContext), Attributes: convertAttrs(l.Attributes)})
	}
	return out
}

// toGirder converts an OpenTelemetry span context.
func toGirder(sc trace.SpanContext) tracing.SpanContext {
	g := tracing.SpanContext{
		TraceID: tracing.TraceID(sc.TraceID()),
		SpanID:  tracing.SpanID(sc.SpanID()),
		Flags:   tracing.TraceFlags(sc.TraceFlags()),
		Remote:  sc.IsRemote(),
	}
	if ts := sc.TraceState().String(); ts != "" {
		g.State, _ = tracing.ParseTraceState(ts)
	}
	return g
}

// toOTel converts a girder span context. A trace state that OpenTelemetry's Level 1 parser
// rejects (Level 2 keys) is left out of the result; girder's propagation still carries it.
func toOTel(g tracing.SpanContext) trace.SpanContext {
	cfg := trace.SpanContextConfig{
		TraceID:    trace.TraceID(g.TraceID),
		SpanID:     trace.SpanID(g.SpanID),
		TraceFlags: trace.TraceFlags(g.Flags),
		Remote:     g.Remote,
	}
	if s := g.State.String(); s != "" {
		cfg.TraceState, _ = trace.ParseTraceState(s)
	}
	return trace.NewSpanContext(cfg)
}

// statusCode converts an OpenTelemetry status code; their numbers differ.
func statusCode(c codes.Code) tracing.StatusCode {
	switch c {
	case codes.Ok:
		return tracing.StatusOK
	case codes.Error:
		return tracing.StatusError
	}
	return tracing.StatusUnset
}
