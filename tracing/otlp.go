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
	// RetryInitial and RetryMax bound the delay between attempts, which grows exponentially with
	// jitter; 0 means 500 ms and 5 s. A Retry-After from the collector is honoured up to RetryMax.
	RetryInitial, RetryMax time.Duration
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
	var errs []error
	if u, err := url.Parse(opts.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("tracing: OTLP URL %q is not an http(s) URL", opts.URL))
	}
	if opts.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("tracing: MaxAttempts %d is negative", opts.MaxAttempts))
	}
	initial := opts.RetryInitial
	if initial == 0 {
		initial = 500 * time.Millisecond
	}
	maxDelay := opts.RetryMax
	if maxDelay == 0 {
		maxDelay = max(5*time.Second, initial)
	}
	policy := backoff.Policy{Initial: initial, Max: maxDelay, Multiplier: 2, Jitter: 0.2}
	if err := policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("tracing: retry delays: %w", err))
	}
	for i, a := range opts.Resource {
		if a.Key == "" {
			errs = append(errs, fmt.Errorf("tracing: Resource[%d] has an empty key", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
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
		policy:   policy,
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
	e.buf = AppendOTLP(e.buf[:0], e.resource, spans)
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

// AppendOTLP appends an OTLP ExportTraceServiceRequest in JSON holding spans, grouped by scope
// under one resource; resource is the encoded resource object ({"attributes":[…]}), or nil.
func AppendOTLP(dst, resource []byte, spans []SpanData) []byte {
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
	dst = append(dst, `{"traceId":`...)
	dst = appendQuotedHex(dst, d.SpanContext.TraceID[:])
	dst = append(dst, `,"spanId":`...)
	dst = appendQuotedHex(dst, d.SpanContext.SpanID[:])
	if ts := d.SpanContext.State.String(); ts != "" {
		dst = append(dst, `,"traceState":`...)
		dst = appendJSONString(dst, ts)
	}
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
	if len(d.Attributes) > 0 {
		dst = append(dst, `,"attributes":`...)
		dst = appendOTLPAttrs(dst, d.Attributes)
	}
	if d.DroppedAttributes > 0 {
		dst = append(dst, `,"droppedAttributesCount":`...)
		dst = strconv.AppendInt(dst, int64(d.DroppedAttributes), 10)
	}
	if len(d.Events) > 0 {
		dst = append(dst, `,"events":[`...)
		for i := range d.Events {
			ev := &d.Events[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"timeUnixNano":`...)
			dst = appendUnixNanoString(dst, ev.Time)
			dst = append(dst, `,"name":`...)
			dst = appendJSONString(dst, ev.Name)
			if len(ev.Attributes) > 0 {
				dst = append(dst, `,"attributes":`...)
				dst = appendOTLPAttrs(dst, ev.Attributes)
			}
			if ev.DroppedAttributes > 0 {
				dst = append(dst, `,"droppedAttributesCount":`...)
				dst = strconv.AppendInt(dst, int64(ev.DroppedAttributes), 10)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if d.DroppedEvents > 0 {
		dst = append(dst, `,"droppedEventsCount":`...)
		dst = strconv.AppendInt(dst, int64(d.DroppedEvents), 10)
	}
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

// appendOTLPAttr appends a KeyValue: {"key":"k","value":{"stringValue":"v"}}; int64 values are
// strings, as protobuf's JSON mapping writes them.
func appendOTLPAttr(dst []byte, a Attr) []byte {
	dst = append(dst, `{"key":`...)
	dst = appendJSONString(dst, a.Key)
	dst = append(dst, `,"value":{`...)
	switch a.Value.Kind() {
	case KindString:
		dst = append(dst, `"stringValue":`...)
		dst = appendJSONString(dst, a.Value.AsString())
	case KindInt64:
		dst = append(dst, `"intValue":"`...)
		dst = strconv.AppendInt(dst, a.Value.AsInt64(), 10)
		dst = append(dst, '"')
	case KindFloat64:
		dst = append(dst, `"doubleValue":`...)
		dst = appendJSONFloat(dst, a.Value.AsFloat64())
	case KindBool:
		dst = append(dst, `"boolValue":`...)
		dst = strconv.AppendBool(dst, a.Value.AsBool())
	}
	return append(dst, "}}"...)
}
