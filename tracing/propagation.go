package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"unsafe"
)

// Header names of W3C Trace Context, lowercase as the specification writes them.
const (
	TraceparentHeader = "traceparent"
	TracestateHeader  = "tracestate"
)

// canonical forms, for reading and writing http.Header without canonicalising each time
const (
	traceparentKey = "Traceparent"
	tracestateKey  = "Tracestate"
)

// traceparentLen is the length of a version 00 traceparent: 2+1+32+1+16+1+2.
const traceparentLen = 55

// Carrier is where Inject writes and Extract reads headers: http.Header satisfies it, and so can
// message metadata of any transport.
type Carrier interface {
	Get(key string) string
	Set(key, value string)
}

// MapCarrier is a Carrier over a map of strings, such as the fields or headers of a message on a
// queue or stream, so that Inject and Extract need no adapter. Keys are used exactly as given:
// Inject writes "traceparent" and "tracestate", Extract reads them. Set on a nil map does
// nothing.
type MapCarrier map[string]string

var _ Carrier = MapCarrier(nil)

// Get returns the value for key, or "".
func (c MapCarrier) Get(key string) string { return c[key] }

// Set stores value under key; on a nil map it does nothing.
func (c MapCarrier) Set(key, value string) {
	if c != nil {
		c[key] = value
	}
}

// Keys returns the map's keys in no particular order, as OpenTelemetry's TextMapCarrier does.
func (c MapCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// ParseTraceparent parses a traceparent header value into a remote SpanContext (State empty).
// Versions above 00 are read as far as version 00 defines, as the specification asks; version
// ff, uppercase or malformed hex, all-zero IDs and trailing data on version 00 are rejected with
// ErrInvalidTraceparent. Flags other than sampled and random are cleared.
func ParseTraceparent(s string) (SpanContext, error) {
	sc, reason := parseTraceparent(s)
	if reason != "" {
		return SpanContext{}, fmt.Errorf("%w: %s", ErrInvalidTraceparent, reason)
	}
	return sc, nil
}

// parseTraceparent returns the reason s is rejected, or "", without allocating.
func parseTraceparent(s string) (SpanContext, string) {
	s = trimOWS(s)
	var sc SpanContext
	if len(s) < traceparentLen {
		return sc, "too short"
	}
	var ver [1]byte
	if !unhex(ver[:], s[:2]) {
		return sc, "bad version"
	}
	if ver[0] == 0xff {
		return sc, "version ff is forbidden"
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return sc, "bad delimiters"
	}
	if ver[0] == 0 && len(s) != traceparentLen {
		return sc, "data after version 00 fields"
	}
	if len(s) > traceparentLen && s[traceparentLen] != '-' {
		return sc, "bad delimiter after flags"
	}
	var flags [1]byte
	t0, b0 := unhex16(s[3:])
	t1, b1 := unhex16(s[19:])
	sp, b2 := unhex16(s[36:])
	binary.LittleEndian.PutUint64(sc.TraceID[:8], t0)
	binary.LittleEndian.PutUint64(sc.TraceID[8:], t1)
	binary.LittleEndian.PutUint64(sc.SpanID[:], sp)
	if b0|b1|b2 != 0 || !unhex(flags[:], s[53:55]) {
		return SpanContext{}, "bad hex"
	}
	if !sc.TraceID.IsValid() {
		return SpanContext{}, "all-zero trace-id"
	}
	if !sc.SpanID.IsValid() {
		return SpanContext{}, "all-zero parent-id"
	}
	sc.Flags = TraceFlags(flags[0]) & knownFlags
	sc.Remote = true
	return sc, ""
}

// AppendTraceparent appends sc as a version 00 traceparent value.
func AppendTraceparent(dst []byte, sc SpanContext) []byte {
	var b [traceparentLen]byte
	putTraceparent(&b, &sc.TraceID, &sc.SpanID, sc.Flags)
	return append(dst, b[:]...)
}

// putTraceparent writes a version 00 traceparent value into b. It takes the fields, not a
// SpanContext, so that Inject writes straight from the span.
func putTraceparent(b *[traceparentLen]byte, traceID *TraceID, spanID *SpanID, flags TraceFlags) {
	b[0], b[1], b[2], b[35], b[52] = '0', '0', '-', '-', '-'
	for i := range 4 {
		binary.LittleEndian.PutUint64(b[3+8*i:], hex8(binary.BigEndian.Uint32(traceID[4*i:])))
	}
	binary.LittleEndian.PutUint64(b[36:], hex8(binary.BigEndian.Uint32(spanID[:4])))
	binary.LittleEndian.PutUint64(b[44:], hex8(binary.BigEndian.Uint32(spanID[4:])))
	f := byte(flags & knownFlags)
	b[53], b[54] = hexDigits[f>>4], hexDigits[f&0x0f]
}

// FormatTraceparent returns sc as a version 00 traceparent value.
func FormatTraceparent(sc SpanContext) string {
	var b [traceparentLen]byte
	putTraceparent(&b, &sc.TraceID, &sc.SpanID, sc.Flags)
	return string(b[:])
}

// injected is what Inject allocates for an http.Header: the header values and the bytes of the
// traceparent value.
type injected struct {
	vals [2]string
	tp   [traceparentLen]byte
}

// Inject writes the span context held by ctx into carrier as traceparent and, when not empty,
// tracestate. It writes nothing when ctx holds no valid span context.
func Inject(ctx context.Context, carrier Carrier) {
	if ctx == nil || carrier == nil {
		return
	}
	s := SpanFromContext(ctx)
	if s == nil || !s.traceID.IsValid() || !s.spanID.IsValid() {
		return
	}
	if h, ok := carrier.(http.Header); ok && h != nil {
		// One allocation holds both header values and the traceparent's bytes.
		b := new(injected)
		putTraceparent(&b.tp, &s.traceID, &s.spanID, s.flags)
		b.vals[0] = unsafe.String(&b.tp[0], traceparentLen) // b.tp is never written again
		h[traceparentKey] = b.vals[0:1:1]
		if ts := s.traceState.String(); ts != "" {
			b.vals[1] = ts
			h[tracestateKey] = b.vals[1:2:2]
		} else {
			delete(h, tracestateKey)
		}
		return
	}
	var tp [traceparentLen]byte
	putTraceparent(&tp, &s.traceID, &s.spanID, s.flags)
	carrier.Set(TraceparentHeader, string(tp[:]))
	if ts := s.traceState.String(); ts != "" {
		carrier.Set(TracestateHeader, ts)
	}
}

// Extract reads traceparent and tracestate from carrier and returns a copy of ctx holding the
// remote span context, so that the next Start continues the trace. When traceparent is missing,
// repeated or invalid, it returns ctx unchanged. An invalid tracestate is dropped and the
// traceparent kept, as the specification asks.
func Extract(ctx context.Context, carrier Carrier) context.Context {
	if ctx == nil {
		ctx = context.Background()
	}
	if carrier == nil {
		return ctx
	}
	var tp, ts string
	if h, ok := carrier.(http.Header); ok {
		vals := h[traceparentKey]
		if len(vals) != 1 {
			return ctx
		}
		tp = vals[0]
		switch states := h[tracestateKey]; len(states) {
		case 0:
		case 1:
			ts = states[0]
		default:
			ts = strings.Join(states, ",")
		}
	} else {
		tp = carrier.Get(TraceparentHeader)
		ts = carrier.Get(TracestateHeader)
	}
	sc, reason := parseTraceparent(tp)
	if reason != "" {
		return ctx
	}
	if ts != "" {
		sc.State, _ = ParseTraceState(ts)
	}
	return ContextWithRemoteSpanContext(ctx, sc)
}
