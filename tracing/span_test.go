package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newTestTracer returns a tracer that samples everything and keeps ended spans in memory.
func newTestTracer(t testing.TB, opts Options) (*Tracer, *InMemoryExporter) {
	t.Helper()
	exp := &InMemoryExporter{}
	sp, err := NewSyncProcessor(exp, nil)
	require.NoError(t, err)
	if opts.Sampler == nil {
		opts.Sampler = AlwaysSample()
	}
	opts.Processors = append(opts.Processors, sp)
	tr, err := New(opts)
	require.NoError(t, err)
	return tr, exp
}

func onlySpan(t testing.TB, exp *InMemoryExporter) SpanData {
	t.Helper()
	spans := exp.Spans()
	require.Len(t, spans, 1)
	return spans[0]
}

func TestSpanAttributes(t *testing.T) {
	tests := []struct {
		name        string
		limits      Limits
		attrs       []Attr
		want        []Attr
		wantDropped int
	}{
		{"kept in order", Limits{}, []Attr{String("a", "1"), Int("b", 2)}, []Attr{String("a", "1"), Int("b", 2)}, 0},
		{"same key replaces", Limits{}, []Attr{String("a", "1"), String("a", "2")}, []Attr{String("a", "2")}, 0},
		{"empty key dropped", Limits{}, []Attr{String("", "x")}, []Attr{}, 1},
		{"over the limit dropped", Limits{MaxAttributes: 2}, []Attr{Int("a", 1), Int("b", 2), Int("c", 3), Int("a", 4)},
			[]Attr{Int("a", 4), Int("b", 2)}, 1},
		{"long value cut at a rune start", Limits{MaxAttributeValueLen: 4}, []Attr{String("s", "abcé")}, []Attr{String("s", "abc")}, 0},
		{"no value limit", Limits{MaxAttributeValueLen: -1}, []Attr{String("s", strings.Repeat("x", 5000))},
			[]Attr{String("s", strings.Repeat("x", 5000))}, 0},
		{"default value limit", Limits{}, []Attr{String("s", strings.Repeat("x", 5000))}, []Attr{String("s", strings.Repeat("x", 4096))}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, Options{Limits: tt.limits})
			_, span := tr.Start(context.Background(), "op")
			span.SetAttributes(tt.attrs...)
			span.End()
			d := onlySpan(t, exp)
			assert.Equal(t, tt.want, append([]Attr{}, d.Attributes...))
			assert.Equal(t, tt.wantDropped, d.DroppedAttributes)
		})
	}
}

func TestSpanAttributesSpillPastInline(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	var want []Attr
	for i := range 24 {
		want = append(want, Int(fmt.Sprint("k", i), i))
	}
	_, span := tr.Start(context.Background(), "op", WithAttributes(want[:6]...))
	span.SetAttributes(want[6:]...)
	span.SetAttributes(Int("k0", -1))
	span.End()
	want[0] = Int("k0", -1)
	assert.Equal(t, want, onlySpan(t, exp).Attributes)
}

func TestSpanEvents(t *testing.T) {
	tr, exp := newTestTracer(t, Options{Limits: Limits{MaxEvents: 2, MaxEventAttributes: 1}})
	_, span := tr.Start(context.Background(), "op")
	span.AddEvent("first", String("a", "1"), String("b", "2"))
	span.AddEvent("second")
	span.AddEvent("third")
	span.End()
	d := onlySpan(t, exp)
	require.Len(t, d.Events, 2)
	assert.Equal(t, "first", d.Events[0].Name)
	assert.Equal(t, []Attr{String("a", "1")}, d.Events[0].Attributes)
	assert.Equal(t, 1, d.Events[0].DroppedAttributes)
	assert.Equal(t, "second", d.Events[1].Name)
	assert.Equal(t, 1, d.DroppedEvents)
	assert.False(t, d.Events[0].Time.Before(d.Start))
	assert.False(t, d.End.Before(d.Events[1].Time))
}

type testError struct{}

func (*testError) Error() string { return "broken" }

func TestSpanRecordError(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	_, span := tr.Start(context.Background(), "op")
	span.RecordError(nil)
	span.RecordError(&testError{}, String("extra", "x"))
	span.RecordError(errors.New("plain"))
	span.End()
	d := onlySpan(t, exp)
	require.Len(t, d.Events, 2)
	assert.Equal(t, "exception", d.Events[0].Name)
	assert.Equal(t, []Attr{
		String("exception.type", "*tracing.testError"),
		String("exception.message", "broken"),
		String("extra", "x"),
	}, d.Events[0].Attributes)
	assert.Equal(t, String("exception.type", "*errors.errorString"), d.Events[1].Attributes[0])
	assert.Equal(t, StatusUnset, d.Status.Code, "recording an error leaves the status alone")
}

func TestSpanStatus(t *testing.T) {
	type step struct {
		code StatusCode
		desc string
	}
	tests := []struct {
		name  string
		steps []step
		want  Status
	}{
		{"unset by default", nil, Status{}},
		{"error keeps the description", []step{{StatusError, "boom"}}, Status{StatusError, "boom"}},
		{"ok drops the description", []step{{StatusOK, "fine"}}, Status{StatusOK, ""}},
		{"ok is final", []step{{StatusOK, ""}, {StatusError, "late"}}, Status{StatusOK, ""}},
		{"error then ok", []step{{StatusError, "boom"}, {StatusOK, ""}}, Status{StatusOK, ""}},
		{"unset is ignored", []step{{StatusError, "boom"}, {StatusUnset, ""}}, Status{StatusError, "boom"}},
		{"unknown code is ignored", []step{{StatusCode(7), "?"}}, Status{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, Options{})
			_, span := tr.Start(context.Background(), "op")
			for _, s := range tt.steps {
				span.SetStatus(s.code, s.desc)
			}
			span.End()
			assert.Equal(t, tt.want, onlySpan(t, exp).Status)
		})
	}
}

func TestSpanEndOnceAndFrozen(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	_, span := tr.Start(context.Background(), "op")
	assert.True(t, span.IsRecording())
	span.End()
	assert.False(t, span.IsRecording())
	span.SetName("renamed")
	span.SetAttributes(String("late", "x"))
	span.AddEvent("late")
	span.SetStatus(StatusError, "late")
	span.End()
	d := onlySpan(t, exp)
	assert.Equal(t, "op", d.Name)
	assert.Empty(t, d.Attributes)
	assert.Empty(t, d.Events)
	assert.Equal(t, Status{}, d.Status)
	assert.False(t, d.End.Before(d.Start))
}

func TestNilAndNonRecordingSpansDoNothing(t *testing.T) {
	tr, err := New(Options{Sampler: NeverSample()})
	require.NoError(t, err)
	_, dropped := tr.Start(context.Background(), "op")
	for _, s := range []*Span{nil, dropped} {
		s.SetName("x")
		s.SetAttributes(String("a", "b"))
		s.AddEvent("e")
		s.RecordError(errors.New("x"))
		s.SetStatus(StatusError, "x")
		s.End()
		assert.False(t, s.IsRecording())
		assert.Empty(t, s.Snapshot().Name)
	}
	assert.True(t, dropped.SpanContext().IsValid())
	assert.False(t, dropped.SpanContext().IsSampled())
}

func TestSnapshotOfRunningSpanIsACopy(t *testing.T) {
	tr, _ := newTestTracer(t, Options{})
	_, span := tr.Start(context.Background(), "op", WithAttributes(String("a", "1")))
	d := span.Snapshot()
	span.SetAttributes(String("a", "2"))
	assert.Equal(t, []Attr{String("a", "1")}, d.Attributes)
	assert.Equal(t, DefaultName, d.Scope)
	span.End()
}

func TestSpanConcurrentUse(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	_, span := tr.Start(context.Background(), "op")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				span.SetAttributes(Int(fmt.Sprint("g", g), i))
				span.AddEvent("tick")
				_ = span.Snapshot()
				if i == 49 && g == 0 {
					span.End()
				}
			}
		})
	}
	wg.Wait()
	span.End()
	d := onlySpan(t, exp)
	assert.LessOrEqual(t, len(d.Events)+d.DroppedEvents, 8*50)
}

func TestKindAndCodeStrings(t *testing.T) {
	assert.Equal(t, "server", SpanKindServer.String())
	assert.Equal(t, "SpanKind(9)", SpanKind(9).String())
	assert.Equal(t, "error", StatusError.String())
	assert.Equal(t, "StatusCode(9)", StatusCode(9).String())
}

func TestSpanContext(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	sampled, err := New(Options{Sampler: AlwaysSample()})
	require.NoError(t, err)
	never, err := New(Options{Sampler: NeverSample()})
	require.NoError(t, err)
	remote := ContextWithRemoteSpanContext(parent, SpanContext{TraceID: TraceID{1}, SpanID: SpanID{2}, Remote: true})
	for _, tt := range []struct {
		name   string
		tracer *Tracer
		parent context.Context
	}{
		{"sampled", sampled, parent},
		{"not sampled", never, parent},
		{"under a remote parent", sampled, remote},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, s := tt.tracer.Start(tt.parent, "op")
			got := s.Context()
			assert.Equal(t, ctx, got, "the context Start returned")
			assert.Same(t, s, SpanFromContext(got))
			assert.Equal(t, "v", got.Value(key{}), "the parent's values")
			_, child := tt.tracer.Start(got, "child")
			assert.Equal(t, s.SpanContext().TraceID, child.SpanContext().TraceID)
		})
	}
	assert.Same(t, SpanFromContext(remote), SpanFromContext(SpanFromContext(remote).Context()))
	var nilSpan *Span
	assert.Nil(t, nilSpan.Context())
	assert.Nil(t, new(Span).Context(), "a Span the package did not make has no context")
}
