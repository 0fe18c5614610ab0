package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/girder-go/girder/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// BenchmarkTracing runs the table's rows as ordinary benchmarks, girder and peer side by side, so
// that they can be repeated (-count) and measured by CPU time on a machine too busy for wall
// times: go test -run ^$ -bench Tracing -count 5. The machine rows a span's floor is made of (a
// clock read, an allocation) run first, so that the floor comes from the same run.
func BenchmarkTracing(b *testing.B) {
	for _, r := range machineRows(nil) {
		if r.Op == "monotonic clock read (time.Since)" || r.Op == "allocation, 128 bytes with a pointer" {
			b.Run("machine: "+r.Op, func(b *testing.B) {
				b.ReportAllocs()
				r.Girder(b)
			})
		}
	}
	for _, r := range tracingRows(nil) {
		for _, side := range []struct {
			name string
			fn   func(*testing.B)
		}{{"girder", r.Girder}, {"peer", r.PeerFn}} {
			b.Run(r.Op+"/"+side.name, func(b *testing.B) {
				b.ReportAllocs()
				side.fn(b)
			})
		}
	}
}

// TestTracingRatioSamplerAgreesWithOTel checks that girder's TraceIDRatio and OpenTelemetry's
// TraceIDRatioBased keep exactly the same traces: a million random trace IDs at several
// fractions, plus IDs placed right at each sampler's bound.
func TestTracingRatioSamplerAgreesWithOTel(t *testing.T) {
	fractions := []float64{0, 1e-6, 0.001, 0.1, 0.25, 1.0 / 3, 0.5, 0.75, 0.999999, 1}
	type pair struct {
		girder *tracing.RatioSampler
		otel   sdktrace.Sampler
	}
	samplers := make([]pair, len(fractions))
	for i, f := range fractions {
		samplers[i] = pair{tracing.TraceIDRatio(f), sdktrace.TraceIDRatioBased(f)}
	}
	agree := func(id tracing.TraceID) {
		p := sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: oteltrace.TraceID(id), Name: "op"}
		for i, s := range samplers {
			want := s.otel.ShouldSample(p).Decision == sdktrace.RecordAndSample
			if got := s.girder.Sample(id); got != want {
				t.Fatalf("fraction %v, trace %s: girder %v, otel %v", fractions[i], id, got, want)
			}
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	const n = 1_000_000
	kept := make([]int, len(fractions))
	for range n {
		var id tracing.TraceID
		binary.BigEndian.PutUint64(id[:8], rng.Uint64())
		binary.BigEndian.PutUint64(id[8:], rng.Uint64())
		agree(id)
		for i, s := range samplers {
			if s.girder.Sample(id) {
				kept[i]++
			}
		}
	}
	for i, f := range fractions {
		if math.Abs(float64(kept[i])/n-f) > 0.005 {
			t.Errorf("fraction %v kept %d of %d", f, kept[i], n)
		}
	}

	for _, f := range fractions {
		bound := uint64(f * (1 << 63))
		for _, x := range []uint64{bound - 1, bound, bound + 1} {
			for _, low := range []uint64{x << 1, x<<1 | 1} {
				var id tracing.TraceID
				id[0] = 1
				binary.BigEndian.PutUint64(id[8:], low)
				agree(id)
			}
		}
	}
}

// TestTracingOTLPDecodesWithOTelProto sends recorded spans through girder's OTLP exporter to an
// httptest collector that decodes them with OpenTelemetry's own protobuf definitions and
// protojson, and checks that exactly the recorded spans arrive.
func TestTracingOTLPDecodesWithOTelProto(t *testing.T) {
	var (
		mu       sync.Mutex
		requests []*coltracepb.ExportTraceServiceRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := protojson.Unmarshal(tracingHexIDsToBase64(t, body), req); err != nil {
			t.Errorf("protojson: %v\n%s", err, body)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		requests = append(requests, req)
		mu.Unlock()
	}))
	defer srv.Close()

	otlp, err := tracing.NewOTLPExporter(tracing.OTLPOptions{URL: srv.URL + "/v1/traces", ServiceName: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	bp, err := tracing.NewBatchProcessor(otlp, tracing.BatchOptions{MaxBatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	mem := &tracing.InMemoryExporter{}
	sp, err := tracing.NewSyncProcessor(mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracing.New(tracing.Options{Name: "girder-bench", Sampler: tracing.AlwaysSample(),
		Processors: []tracing.Processor{bp, sp}, Limits: tracing.Limits{MaxAttributes: 6, MaxEvents: 2}})
	if err != nil {
		t.Fatal(err)
	}

	remote := http.Header{}
	remote.Set("traceparent", tracingTraceparent)
	remote.Set("tracestate", tracingTracestate)
	ctx, server := tr.Start(tracing.Extract(context.Background(), remote), "GET /orders", tracing.WithSpanKind(tracing.SpanKindServer))
	for i := range 6 {
		_, child := tr.Start(ctx, "query", tracing.WithSpanKind(tracing.SpanKind(i%5)), tracing.WithAttributes(
			tracing.String("db.statement", "select \"x\" from t\n"),
			tracing.Int64("rows", math.MinInt64+int64(i)),
			tracing.Float64("ratio", 0.1*float64(i)),
			tracing.Float64("inf", math.Inf(1)),
			tracing.Bool("cached", i%2 == 0),
		))
		child.SetAttributes(tracing.String("extra", "a"), tracing.String("over", "the limit"))
		child.AddEvent("retry", tracing.Int("attempt", i))
		child.RecordError(io.ErrUnexpectedEOF)
		child.AddEvent("dropped")
		if i%2 == 1 {
			child.SetStatus(tracing.StatusError, "failed ✗")
		} else {
			child.SetStatus(tracing.StatusOK, "")
		}
		child.End()
	}
	server.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	var got []*tracepb.Span
	for _, req := range requests {
		for _, rs := range req.GetResourceSpans() {
			if a := rs.GetResource().GetAttributes(); len(a) != 1 || a[0].GetKey() != "service.name" || a[0].GetValue().GetStringValue() != "bench" {
				t.Errorf("resource attributes %v", a)
			}
			for _, ss := range rs.GetScopeSpans() {
				if ss.GetScope().GetName() != "girder-bench" {
					t.Errorf("scope %q", ss.GetScope().GetName())
				}
				got = append(got, ss.GetSpans()...)
			}
		}
	}
	want := mem.Spans()
	if len(requests) != 2 || len(got) != len(want) || len(want) != 7 {
		t.Fatalf("%d requests with %d spans, recorded %d", len(requests), len(got), len(want))
	}
	for i, w := range want {
		tracingCompareSpan(t, w, got[i])
	}
}

// tracingHexIDsToBase64 rewrites the hex trace and span IDs of OTLP JSON into the base64 that
// protojson expects for bytes fields: OTLP's JSON encoding differs from protobuf's there, and
// collectors decode it the same way.
func tracingHexIDsToBase64(t *testing.T, body []byte) []byte {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Errorf("not JSON: %v", err)
		return body
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
					b, err := hex.DecodeString(s)
					if err != nil {
						t.Errorf("%s %q is not hex", k, s)
					}
					v[k] = base64.StdEncoding.EncodeToString(b)
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	out, _ := json.Marshal(doc)
	return out
}

func tracingCompareSpan(t *testing.T, w tracing.SpanData, g *tracepb.Span) {
	t.Helper()
	check := func(what string, got, want any) {
		t.Helper()
		if gj, wj := tracingJSON(got), tracingJSON(want); gj != wj {
			t.Errorf("span %s %s: got %s, want %s", w.SpanContext.SpanID, what, gj, wj)
		}
	}
	check("traceId", g.GetTraceId(), w.SpanContext.TraceID[:])
	check("spanId", g.GetSpanId(), w.SpanContext.SpanID[:])
	check("parentSpanId", g.GetParentSpanId(), w.Parent.SpanID[:])
	check("traceState", g.GetTraceState(), w.SpanContext.State.String())
	remote := uint32(0)
	if w.Parent.Remote {
		remote = 0x200
	}
	check("flags", g.GetFlags(), uint32(w.SpanContext.Flags)|0x100|remote)
	check("name", g.GetName(), w.Name)
	check("kind", g.GetKind(), tracepb.Span_SpanKind(int(w.Kind)+1))
	check("start", g.GetStartTimeUnixNano(), uint64(w.Start.UnixNano()))
	check("end", g.GetEndTimeUnixNano(), uint64(w.End.UnixNano()))
	check("attributes", tracingProtoAttrs(g.GetAttributes()), tracingAttrs(w.Attributes))
	check("droppedAttributes", g.GetDroppedAttributesCount(), uint32(w.DroppedAttributes))
	check("droppedEvents", g.GetDroppedEventsCount(), uint32(w.DroppedEvents))
	check("status", []any{int32(g.GetStatus().GetCode()), g.GetStatus().GetMessage()}, []any{int32(w.Status.Code), w.Status.Description})
	if len(g.GetEvents()) != len(w.Events) {
		t.Fatalf("%d events, want %d", len(g.GetEvents()), len(w.Events))
	}
	for i, ev := range w.Events {
		ge := g.GetEvents()[i]
		check("event name", ge.GetName(), ev.Name)
		check("event time", ge.GetTimeUnixNano(), uint64(ev.Time.UnixNano()))
		check("event attributes", tracingProtoAttrs(ge.GetAttributes()), tracingAttrs(ev.Attributes))
		check("event dropped", ge.GetDroppedAttributesCount(), uint32(ev.DroppedAttributes))
	}
}

func tracingJSON(v any) string {
	if b, ok := v.([]byte); ok {
		if len(b) == 0 || tracingAllZero(b) {
			return `""`
		}
		return hex.EncodeToString(b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(out)
}

func tracingAllZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// tracingAttrs and tracingProtoAttrs bring both sides to key → (type, value as text).
func tracingAttrs(attrs []tracing.Attr) [][3]string {
	var out [][3]string
	for _, a := range attrs {
		v := a.Value.String()
		if f, ok := a.Value.Any().(float64); ok && math.IsInf(f, 1) {
			v = "+Inf"
		}
		out = append(out, [3]string{a.Key, fmt.Sprintf("%T", a.Value.Any()), v})
	}
	return out
}

func tracingProtoAttrs(kvs []*commonpb.KeyValue) [][3]string {
	var out [][3]string
	for _, kv := range kvs {
		var kind, v string
		switch x := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			kind, v = "string", x.StringValue
		case *commonpb.AnyValue_IntValue:
			kind, v = "int64", tracing.Int64Value(x.IntValue).String()
		case *commonpb.AnyValue_DoubleValue:
			kind, v = "float64", tracing.Float64Value(x.DoubleValue).String()
			if math.IsInf(x.DoubleValue, 1) {
				v = "+Inf"
			}
		case *commonpb.AnyValue_BoolValue:
			kind, v = "bool", tracing.BoolValue(x.BoolValue).String()
		default:
			kind = "unexpected"
		}
		out = append(out, [3]string{kv.GetKey(), kind, v})
	}
	return out
}
