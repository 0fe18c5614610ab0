package tracing

import (
	"context"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// InMemoryExporter keeps exported spans in memory, for tests. The zero value is ready to use and
// it is safe for concurrent use.
type InMemoryExporter struct {
	mu     sync.Mutex
	spans  []SpanData
	closed bool
}

var _ Exporter = (*InMemoryExporter)(nil)

// ExportSpans keeps copies of spans; it returns ErrClosed after Shutdown.
func (e *InMemoryExporter) ExportSpans(ctx context.Context, spans []SpanData) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.spans = append(e.spans, spans...)
	return nil
}

// Spans returns the spans exported so far, in export order.
func (e *InMemoryExporter) Spans() []SpanData {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.spans)
}

// Reset forgets the spans exported so far.
func (e *InMemoryExporter) Reset() {
	e.mu.Lock()
	e.spans = nil
	e.mu.Unlock()
}

// Shutdown makes later exports fail with ErrClosed; the spans stay readable.
func (e *InMemoryExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return nil
}

// JSONExporter writes each span as one JSON object per line to an io.Writer: a log file, stdout,
// a pipe to another tool. Attribute values keep their JSON types; times are RFC 3339 with
// nanoseconds. One batch is one Write. It is safe for concurrent use.
type JSONExporter struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	closed bool
}

var _ Exporter = (*JSONExporter)(nil)

// NewJSONExporter returns an exporter writing to w; a nil w discards.
func NewJSONExporter(w io.Writer) *JSONExporter {
	if w == nil {
		w = io.Discard
	}
	return &JSONExporter{w: w}
}

// ExportSpans writes one line per span.
func (e *JSONExporter) ExportSpans(ctx context.Context, spans []SpanData) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.buf = e.buf[:0]
	for i := range spans {
		e.buf = appendJSON(e.buf, &spans[i])
		e.buf = append(e.buf, '\n')
	}
	_, err := e.w.Write(e.buf)
	return err
}

// Shutdown makes later exports fail with ErrClosed. It does not close the writer.
func (e *JSONExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return nil
}

// appendJSON appends d as the JSON object JSONExporter writes (without the newline):
//
//	{"name":"GET /users/{id}","traceId":"…","spanId":"…","parentSpanId":"…","kind":"server",
//	 "start":"2026-01-02T03:04:05.123456789Z","end":"…","durationNs":1234,
//	 "attributes":{"http.response.status_code":200},"events":[…],"links":[…],
//	 "status":{"code":"error","message":"…"}}
//
// Empty fields are left out.
func appendJSON(dst []byte, d *SpanData) []byte {
	dst = append(dst, '{')
	dst = appendJSONIdentity(dst, d)
	dst = appendKey(dst, "start", false)
	dst = appendRFC3339(dst, d.Start)
	dst = appendKey(dst, "end", false)
	dst = appendRFC3339(dst, d.End)
	dst = appendKey(dst, "durationNs", false)
	dst = strconv.AppendInt(dst, int64(d.End.Sub(d.Start)), 10)
	if len(d.Attributes) > 0 {
		dst = appendKey(dst, "attributes", false)
		dst = appendAttrObject(dst, d.Attributes)
	}
	dst = appendCount(dst, "droppedAttributes", d.DroppedAttributes)
	if len(d.Events) > 0 {
		dst = appendKey(dst, "events", false)
		dst = appendJSONEvents(dst, d.Events)
	}
	dst = appendCount(dst, "droppedEvents", d.DroppedEvents)
	if len(d.Links) > 0 {
		dst = appendKey(dst, "links", false)
		dst = appendJSONLinks(dst, d.Links)
	}
	dst = appendCount(dst, "droppedLinks", d.DroppedLinks)
	dst = appendJSONStatus(dst, d.Status)
	return append(dst, '}')
}

// appendJSONIdentity appends the fields that say which span d is: name, IDs, trace state, kind
// and scope.
func appendJSONIdentity(dst []byte, d *SpanData) []byte {
	dst = appendKey(dst, "name", true)
	dst = appendJSONString(dst, d.Name)
	dst = appendKey(dst, "traceId", false)
	dst = appendQuotedHex(dst, d.SpanContext.TraceID[:])
	dst = appendKey(dst, "spanId", false)
	dst = appendQuotedHex(dst, d.SpanContext.SpanID[:])
	if d.Parent.SpanID.IsValid() {
		dst = appendKey(dst, "parentSpanId", false)
		dst = appendQuotedHex(dst, d.Parent.SpanID[:])
		if d.Parent.Remote {
			dst = appendKey(dst, "parentRemote", false)
			dst = append(dst, "true"...)
		}
	}
	if ts := d.SpanContext.State.String(); ts != "" {
		dst = appendKey(dst, "traceState", false)
		dst = appendJSONString(dst, ts)
	}
	dst = appendKey(dst, "kind", false)
	dst = appendJSONString(dst, d.Kind.String())
	if d.Scope != "" {
		dst = appendKey(dst, "scope", false)
		dst = appendJSONString(dst, d.Scope)
	}
	return dst
}

func appendJSONEvents(dst []byte, events []Event) []byte {
	dst = append(dst, '[')
	for i, ev := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		dst = appendKey(dst, "name", true)
		dst = appendJSONString(dst, ev.Name)
		dst = appendKey(dst, "time", false)
		dst = appendRFC3339(dst, ev.Time)
		if len(ev.Attributes) > 0 {
			dst = appendKey(dst, "attributes", false)
			dst = appendAttrObject(dst, ev.Attributes)
		}
		dst = appendCount(dst, "droppedAttributes", ev.DroppedAttributes)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendJSONLinks(dst []byte, links []Link) []byte {
	dst = append(dst, '[')
	for i, l := range links {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		dst = appendKey(dst, "traceId", true)
		dst = appendQuotedHex(dst, l.SpanContext.TraceID[:])
		dst = appendKey(dst, "spanId", false)
		dst = appendQuotedHex(dst, l.SpanContext.SpanID[:])
		if ts := l.SpanContext.State.String(); ts != "" {
			dst = appendKey(dst, "traceState", false)
			dst = appendJSONString(dst, ts)
		}
		if len(l.Attributes) > 0 {
			dst = appendKey(dst, "attributes", false)
			dst = appendAttrObject(dst, l.Attributes)
		}
		dst = appendCount(dst, "droppedAttributes", l.DroppedAttributes)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendJSONStatus(dst []byte, st Status) []byte {
	if st.Code == StatusUnset {
		return dst
	}
	dst = appendKey(dst, "status", false)
	dst = append(dst, '{')
	dst = appendKey(dst, "code", true)
	dst = appendJSONString(dst, st.Code.String())
	if st.Description != "" {
		dst = appendKey(dst, "message", false)
		dst = appendJSONString(dst, st.Description)
	}
	return append(dst, '}')
}

// appendCount appends "key":n when n is positive.
func appendCount(dst []byte, key string, n int) []byte {
	if n <= 0 {
		return dst
	}
	dst = appendKey(dst, key, false)
	return strconv.AppendInt(dst, int64(n), 10)
}

func appendQuotedHex(dst, id []byte) []byte {
	dst = append(dst, '"')
	dst = appendHex(dst, id)
	return append(dst, '"')
}

func appendRFC3339(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendAttrObject appends attributes as one JSON object, values in their JSON types.
func appendAttrObject(dst []byte, attrs []Attr) []byte {
	dst = append(dst, '{')
	for i, a := range attrs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, a.Key)
		dst = append(dst, ':')
		dst = appendJSONValue(dst, a.Value)
	}
	return append(dst, '}')
}

// appendJSONValue appends v in its JSON type; slices as arrays, the empty value as null.
func appendJSONValue(dst []byte, v Value) []byte {
	switch v.kind {
	case kindString:
		return appendJSONString(dst, v.str)
	case kindInt64:
		return strconv.AppendInt(dst, int64(v.num), 10)
	case kindFloat64:
		return appendJSONFloat(dst, v.AsFloat64())
	case kindBool:
		return strconv.AppendBool(dst, v.num != 0)
	case kindStringSlice:
		return appendJSONArray(dst, sliceOf[string](v), StringValue)
	case kindInt64Slice:
		return appendJSONArray(dst, sliceOf[int64](v), Int64Value)
	case kindFloat64Slice:
		return appendJSONArray(dst, sliceOf[float64](v), Float64Value)
	case kindBoolSlice:
		return appendJSONArray(dst, sliceOf[bool](v), BoolValue)
	}
	return append(dst, "null"...)
}

func appendJSONArray[T any](dst []byte, s []T, value func(T) Value) []byte {
	dst = append(dst, '[')
	for i, e := range s {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONValue(dst, value(e))
	}
	return append(dst, ']')
}

// The exporters write JSON by appending to a reused buffer: no reflection, no allocation per span.

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, so the output is
// always valid JSON whatever the attributes hold.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0x0f])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSONFloat appends f as a JSON number, or as the strings "NaN", "Infinity" and
// "-Infinity" that protobuf's JSON mapping uses for values JSON numbers cannot hold.
func appendJSONFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// appendUnixNanoString appends t as decimal nanoseconds since 1970 in quotes, as OTLP JSON
// writes 64-bit integers.
func appendUnixNanoString(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, t.UnixNano(), 10)
	return append(dst, '"')
}

// appendKey appends "key": after a comma unless first.
func appendKey(dst []byte, key string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}
