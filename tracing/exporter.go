package tracing

import (
	"context"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"
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
		e.buf = AppendJSON(e.buf, &spans[i])
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

// AppendJSON appends d as the JSON object JSONExporter writes (without the newline):
//
//	{"name":"GET /users/{id}","traceId":"…","spanId":"…","parentSpanId":"…","kind":"server",
//	 "start":"2026-01-02T03:04:05.123456789Z","end":"…","durationNs":1234,
//	 "attributes":{"http.response.status_code":200},"events":[…],"status":{"code":"error","message":"…"}}
//
// Empty fields are left out.
func AppendJSON(dst []byte, d *SpanData) []byte {
	dst = append(dst, '{')
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
	if d.DroppedAttributes > 0 {
		dst = appendKey(dst, "droppedAttributes", false)
		dst = strconv.AppendInt(dst, int64(d.DroppedAttributes), 10)
	}
	if len(d.Events) > 0 {
		dst = appendKey(dst, "events", false)
		dst = append(dst, '[')
		for i, ev := range d.Events {
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
			if ev.DroppedAttributes > 0 {
				dst = appendKey(dst, "droppedAttributes", false)
				dst = strconv.AppendInt(dst, int64(ev.DroppedAttributes), 10)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if d.DroppedEvents > 0 {
		dst = appendKey(dst, "droppedEvents", false)
		dst = strconv.AppendInt(dst, int64(d.DroppedEvents), 10)
	}
	if d.Status.Code != StatusUnset {
		dst = appendKey(dst, "status", false)
		dst = append(dst, '{')
		dst = appendKey(dst, "code", true)
		dst = appendJSONString(dst, d.Status.Code.String())
		if d.Status.Description != "" {
			dst = appendKey(dst, "message", false)
			dst = appendJSONString(dst, d.Status.Description)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
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
		switch a.Value.Kind() {
		case KindString:
			dst = appendJSONString(dst, a.Value.AsString())
		case KindInt64:
			dst = strconv.AppendInt(dst, a.Value.AsInt64(), 10)
		case KindFloat64:
			dst = appendJSONFloat(dst, a.Value.AsFloat64())
		case KindBool:
			dst = strconv.AppendBool(dst, a.Value.AsBool())
		default:
			dst = append(dst, "null"...)
		}
	}
	return append(dst, '}')
}
