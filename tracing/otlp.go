package tracing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/girder-go/girder/internal/backoff"
)

// OTLPOptions configure an OTLPExporter. Only URL is required.
type OTLPOptions struct {
	// URL is the collector's OTLP/HTTP traces endpoint, such as
	// "http://localhost:4318/v1/traces" (the OpenTelemetry Collector, Jaeger, Tempo).
	URL string
	// Headers are added to every request (for example an authorization token).
	Headers map[string]string
	// Client sends the requests; nil means a client of its own.
	Client *http.Client
	// ServiceName is the service.name of the resource the spans come from; "" means
	// "unknown_service", as OpenTelemetry says.
	ServiceName string
	// Resource holds more resource attributes (service.version, deployment.environment, …).
	Resource []Attr
	// MaxAttempts is how many times one batch is sent before giving up; 0 means 5.
	MaxAttempts int
	// Retry is the delay between attempts. Zero fields mean Initial 500 ms, Max 5 s, Multiplier
	// 2 and Jitter 0.2. A Retry-After from the collector is honoured up to Retry.Max.
	Retry Backoff
}

// Backoff is the one shape of a growing delay in girder: the delay before attempt n is
// min(Max, Initial·Multiplierⁿ), reduced by up to Jitter of itself at random. Its zero fields
// mean the defaults of the field that holds it.
type Backoff = backoff.Policy

// Validate reports every problem with the options, joined in one error.
func (o OTLPOptions) Validate() error {
	var errs []error
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("tracing: OTLP URL %q is not an http(s) URL", o.URL))
	}
	if o.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("tracing: MaxAttempts %d is negative", o.MaxAttempts))
	}
	for _, err := range o.Retry.Check("Retry") {
		errs = append(errs, fmt.Errorf("tracing: %w", err))
	}
	for i, a := range o.Resource {
		if a.Key == "" {
			errs = append(errs, fmt.Errorf("tracing: Resource[%d] has an empty key", i))
		}
	}
	return errors.Join(errs...)
}

// retryPolicy is Retry with the exporter's defaults.
func (o OTLPOptions) retryPolicy() backoff.Policy {
	p := o.Retry
	if p.Initial == 0 {
		p.Initial = 500 * time.Millisecond
		if p.Max > 0 {
			p.Initial = min(p.Initial, p.Max)
		}
	}
	if p.Max == 0 {
		p.Max = max(5*time.Second, p.Initial)
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	return p
}

// OTLPExporter sends spans to an OpenTelemetry collector as OTLP/HTTP JSON, built with the
// standard library alone: IDs in hex, times as decimal nanosecond strings, as OTLP's JSON
// encoding requires. Failed requests are retried with exponential backoff when the error is
// transient (network errors, 429, 502, 503, 504). It is safe for concurrent use.
type OTLPExporter struct {
	url      string
	headers  map[string]string
	client   *http.Client
	resource []byte // the encoded "resource" object
	attempts int
	policy   backoff.Policy

	mu     sync.Mutex
	buf    []byte
	closed bool
}

var _ Exporter = (*OTLPExporter)(nil)

// HTTPStatusError is a collector's answer other than 2xx.
type HTTPStatusError struct {
	StatusCode int
	Body       string // the first 512 bytes
	Retryable  bool   // 429, 502, 503 or 504
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("tracing: collector answered %d: %s", e.StatusCode, e.Body)
}

// NewOTLPExporter returns an exporter, or every problem with opts joined in one error.
func NewOTLPExporter(opts OTLPOptions) (*OTLPExporter, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{}
	}
	service := opts.ServiceName
	if service == "" {
		service = "unknown_service"
	}
	res := []byte(`{"attributes":[`)
	res = appendOTLPAttr(res, String("service.name", service))
	for _, a := range opts.Resource {
		if a.Key != "service.name" {
			res = append(res, ',')
			res = appendOTLPAttr(res, a)
		}
	}
	res = append(res, "]}"...)
	return &OTLPExporter{
		url:      opts.URL,
		headers:  opts.Headers,
		client:   client,
		resource: res,
		attempts: orDefault(opts.MaxAttempts, 5),
		policy:   opts.retryPolicy(),
	}, nil
}

// ExportSpans sends spans in one request, retrying transient failures until MaxAttempts or ctx
// ends. A non-retryable answer returns an *HTTPStatusError at once.
func (e *OTLPExporter) ExportSpans(ctx context.Context, spans []SpanData) error {
	if len(spans) == 0 {
		return nil
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.buf = appendOTLP(e.buf[:0], e.resource, spans)
	body := bytes.Clone(e.buf)
	e.mu.Unlock()

	var err error
	for attempt := 0; attempt < e.attempts; attempt++ {
		var retryAfter time.Duration
		retryAfter, err = e.send(ctx, body)
		if err == nil {
			return nil
		}
		var se *HTTPStatusError
		if (errors.As(err, &se) && !se.Retryable) || ctx.Err() != nil || attempt == e.attempts-1 {
			break
		}
		delay := max(e.policy.Delay(attempt), min(retryAfter, e.policy.Max))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("tracing: OTLP export of %d spans: %w (last error: %w)", len(spans), ctx.Err(), err)
		}
	}
	return fmt.Errorf("tracing: OTLP export of %d spans: %w", len(spans), err)
}

// send makes one attempt; it returns the collector's Retry-After, if any.
func (e *OTLPExporter) send(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // so the connection is reused
	if resp.StatusCode/100 == 2 {
		return 0, nil
	}
	var retryAfter time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	code := resp.StatusCode
	retryable := code == http.StatusTooManyRequests || code == http.StatusBadGateway ||
		code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
	return retryAfter, &HTTPStatusError{StatusCode: code, Body: string(msg), Retryable: retryable}
}

// Shutdown makes later exports fail with ErrClosed.
func (e *OTLPExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return nil
}

// appendOTLP appends an OTLP ExportTraceServiceRequest in JSON holding spans, grouped by scope
// under one resource; resource is the encoded resource object ({"attributes":[…]}), or nil.
func appendOTLP(dst, resource []byte, spans []SpanData) []byte {
	dst = append(dst, `{"resourceSpans":[{`...)
	if resource != nil {
		dst = append(dst, `"resource":`...)
		dst = append(dst, resource...)
		dst = append(dst, ',')
	}
	dst = append(dst, `"scopeSpans":[`...)
	done := make([]bool, len(spans))
	for i := range spans {
		if done[i] {
			continue
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		scope := spans[i].Scope
		dst = append(dst, `{"scope":{"name":`...)
		dst = appendJSONString(dst, scope)
		dst = append(dst, `},"spans":[`...)
		first := true
		for j := i; j < len(spans); j++ {
			if done[j] || spans[j].Scope != scope {
				continue
			}
			done[j] = true
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendOTLPSpan(dst, &spans[j])
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, "]}]}"...)
}

// OTLP span flags: the W3C flags in bits 0-7, then whether the parent's remoteness is known and
// whether it is remote.
const (
	otlpFlagHasIsRemote = 0x100
	otlpFlagIsRemote    = 0x200
)

func appendOTLPSpan(dst []byte, d *SpanData) []byte {
	dst = append(dst, '{')
	dst = appendOTLPIDs(dst, d.SpanContext)
	flags := uint32(d.SpanContext.Flags) | otlpFlagHasIsRemote
	if d.Parent.SpanID.IsValid() {
		dst = append(dst, `,"parentSpanId":`...)
		dst = appendQuotedHex(dst, d.Parent.SpanID[:])
		if d.Parent.Remote {
			flags |= otlpFlagIsRemote
		}
	}
	dst = append(dst, `,"flags":`...)
	dst = strconv.AppendUint(dst, uint64(flags), 10)
	dst = append(dst, `,"name":`...)
	dst = appendJSONString(dst, d.Name)
	dst = append(dst, `,"kind":`...)
	dst = strconv.AppendInt(dst, int64(d.Kind)+1, 10) // OTLP counts from SPAN_KIND_UNSPECIFIED
	dst = append(dst, `,"startTimeUnixNano":`...)
	dst = appendUnixNanoString(dst, d.Start)
	dst = append(dst, `,"endTimeUnixNano":`...)
	dst = appendUnixNanoString(dst, d.End)
	dst = appendOTLPAttrsField(dst, d.Attributes, d.DroppedAttributes)
	if len(d.Events) > 0 {
		dst = append(dst, `,"events":[`...)
		for i := range d.Events {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendOTLPEvent(dst, &d.Events[i])
		}
		dst = append(dst, ']')
	}
	dst = appendOTLPCount(dst, "droppedEventsCount", d.DroppedEvents)
	if len(d.Links) > 0 {
		dst = append(dst, `,"links":[`...)
		for i := range d.Links {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendOTLPLink(dst, &d.Links[i])
		}
		dst = append(dst, ']')
	}
	dst = appendOTLPCount(dst, "droppedLinksCount", d.DroppedLinks)
	if d.Status.Code != StatusUnset {
		dst = append(dst, `,"status":{"code":`...)
		dst = strconv.AppendInt(dst, int64(d.Status.Code), 10)
		if d.Status.Description != "" {
			dst = append(dst, `,"message":`...)
			dst = appendJSONString(dst, d.Status.Description)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendOTLPIDs appends the traceId, spanId and traceState fields of sc.
func appendOTLPIDs(dst []byte, sc SpanContext) []byte {
	dst = append(dst, `"traceId":`...)
	dst = appendQuotedHex(dst, sc.TraceID[:])
	dst = append(dst, `,"spanId":`...)
	dst = appendQuotedHex(dst, sc.SpanID[:])
	if ts := sc.State.String(); ts != "" {
		dst = append(dst, `,"traceState":`...)
		dst = appendJSONString(dst, ts)
	}
	return dst
}

func appendOTLPEvent(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"timeUnixNano":`...)
	dst = appendUnixNanoString(dst, ev.Time)
	dst = append(dst, `,"name":`...)
	dst = appendJSONString(dst, ev.Name)
	dst = appendOTLPAttrsField(dst, ev.Attributes, ev.DroppedAttributes)
	return append(dst, '}')
}

func appendOTLPLink(dst []byte, l *Link) []byte {
	dst = append(dst, '{')
	dst = appendOTLPIDs(dst, l.SpanContext)
	dst = appendOTLPAttrsField(dst, l.Attributes, l.DroppedAttributes)
	dst = append(dst, `,"flags":`...)
	flags := uint32(l.SpanContext.Flags) | otlpFlagHasIsRemote
	if l.SpanContext.Remote {
		flags |= otlpFlagIsRemote
	}
	dst = strconv.AppendUint(dst, uint64(flags), 10)
	return append(dst, '}')
}

// appendOTLPAttrsField appends the attributes and droppedAttributesCount fields, each when not
// empty.
func appendOTLPAttrsField(dst []byte, attrs []Attr, dropped int) []byte {
	if len(attrs) > 0 {
		dst = append(dst, `,"attributes":`...)
		dst = appendOTLPAttrs(dst, attrs)
	}
	return appendOTLPCount(dst, "droppedAttributesCount", dropped)
}

func appendOTLPCount(dst []byte, key string, n int) []byte {
	if n <= 0 {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return strconv.AppendInt(dst, int64(n), 10)
}

func appendOTLPAttrs(dst []byte, attrs []Attr) []byte {
	dst = append(dst, '[')
	for i, a := range attrs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendOTLPAttr(dst, a)
	}
	return append(dst, ']')
}

// appendOTLPAttr appends a KeyValue: {"key":"k","value":{"stringValue":"v"}}.
func appendOTLPAttr(dst []byte, a Attr) []byte {
	dst = append(dst, `{"key":`...)
	dst = appendJSONString(dst, a.Key)
	dst = append(dst, `,"value":`...)
	dst = appendOTLPValue(dst, a.Value)
	return append(dst, '}')
}

// appendOTLPValue appends an AnyValue; int64 values are strings, as protobuf's JSON mapping
// writes them, and slices are arrayValue.
func appendOTLPValue(dst []byte, v Value) []byte {
	dst = append(dst, '{')
	switch v.kind {
	case kindString:
		dst = append(dst, `"stringValue":`...)
		dst = appendJSONString(dst, v.str)
	case kindInt64:
		dst = append(dst, `"intValue":"`...)
		dst = strconv.AppendInt(dst, int64(v.num), 10)
		dst = append(dst, '"')
	case kindFloat64:
		dst = append(dst, `"doubleValue":`...)
		dst = appendJSONFloat(dst, v.AsFloat64())
	case kindBool:
		dst = append(dst, `"boolValue":`...)
		dst = strconv.AppendBool(dst, v.num != 0)
	case kindStringSlice:
		dst = appendOTLPArray(dst, sliceOf[string](v), StringValue)
	case kindInt64Slice:
		dst = appendOTLPArray(dst, sliceOf[int64](v), Int64Value)
	case kindFloat64Slice:
		dst = appendOTLPArray(dst, sliceOf[float64](v), Float64Value)
	case kindBoolSlice:
		dst = appendOTLPArray(dst, sliceOf[bool](v), BoolValue)
	}
	return append(dst, '}')
}

func appendOTLPArray[T any](dst []byte, s []T, value func(T) Value) []byte {
	dst = append(dst, `"arrayValue":{"values":[`...)
	for i, e := range s {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendOTLPValue(dst, value(e))
	}
	return append(dst, "]}"...)
}
