package tracing

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParentChild(t *testing.T) {
	tr, exp := newTestTracer(t, Options{Name: "test"})
	ctx, parent := tr.Start(context.Background(), "parent")
	cctx, child := tr.Start(ctx, "child")
	assert.Same(t, child, SpanFromContext(cctx))
	assert.Same(t, parent, SpanFromContext(ctx))
	_, root := tr.Start(cctx, "root", WithNewRoot())
	root.End()
	child.End()
	parent.End()

	spans := exp.Spans()
	require.Len(t, spans, 3)
	r, c, p := spans[0], spans[1], spans[2]
	assert.Equal(t, p.SpanContext.TraceID, c.SpanContext.TraceID)
	assert.Equal(t, p.SpanContext.SpanID, c.Parent.SpanID)
	assert.False(t, c.Parent.Remote)
	assert.NotEqual(t, p.SpanContext.SpanID, c.SpanContext.SpanID)
	assert.False(t, p.Parent.IsValid())
	assert.NotEqual(t, p.SpanContext.TraceID, r.SpanContext.TraceID)
	assert.False(t, r.Parent.IsValid())
	assert.Equal(t, "test", c.Scope)
	assert.True(t, c.SpanContext.IsSampled())
}

func TestRemoteParent(t *testing.T) {
	tr, exp := newTestTracer(t, Options{Sampler: ParentBased(NeverSample())})
	state, err := ParseTraceState("v=1")
	require.NoError(t, err)
	remote := SpanContext{TraceID: traceIDWithLow(7), SpanID: SpanID{9}, Flags: FlagSampled, State: state}
	ctx := ContextWithRemoteSpanContext(context.Background(), remote)
	assert.True(t, SpanContextFromContext(ctx).Remote)
	_, span := tr.Start(ctx, "server", WithSpanKind(SpanKindServer))
	span.End()
	d := onlySpan(t, exp)
	assert.Equal(t, remote.TraceID, d.SpanContext.TraceID)
	assert.Equal(t, remote.SpanID, d.Parent.SpanID)
	assert.True(t, d.Parent.Remote)
	assert.Equal(t, state, d.SpanContext.State, "tracestate goes on to children")
	assert.Equal(t, SpanKindServer, d.Kind)

	remote.Flags = 0
	ctx = ContextWithRemoteSpanContext(context.Background(), remote)
	_, span = tr.Start(ctx, "not sampled")
	assert.False(t, span.IsRecording())
	assert.Equal(t, remote.TraceID, span.SpanContext().TraceID)
	assert.False(t, span.SpanContext().IsSampled())
}

func TestUnsampledParentPassesOnItsDecision(t *testing.T) {
	tr, err := New(Options{Sampler: TraceIDRatio(0)})
	require.NoError(t, err)
	ctx, parent := tr.Start(context.Background(), "parent")
	_, child := tr.Start(ctx, "child")
	assert.Equal(t, parent.SpanContext().TraceID, child.SpanContext().TraceID)
	assert.NotEqual(t, parent.SpanContext().SpanID, child.SpanContext().SpanID)
}

func TestRecordOnlyIsNotExported(t *testing.T) {
	tr, exp := newTestTracer(t, Options{Sampler: SamplerFunc(func(SamplingParameters) Decision { return RecordOnly })})
	_, span := tr.Start(context.Background(), "op")
	assert.True(t, span.IsRecording())
	assert.False(t, span.SpanContext().IsSampled())
	span.End()
	assert.Empty(t, exp.Spans())
}

func TestNewValidates(t *testing.T) {
	_, err := New(Options{
		Processors: []Processor{nil, (*SyncProcessor)(nil), discardProcessor{}, (*BatchProcessor)(nil)},
		Limits:     Limits{MaxAttributes: -1, MaxEvents: -2, MaxEventAttributes: -3, MaxAttributeValueLen: -2},
	})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "Processors[2]", "a value processor is not nil")
	for _, want := range []string{"Processors[0]", "Processors[1]", "Processors[3]", "MaxAttributes", "MaxEvents", "MaxEventAttributes", "MaxAttributeValueLen"} {
		assert.ErrorContains(t, err, want)
	}
}

func TestZeroAndNilTracer(t *testing.T) {
	var zero Tracer
	ctx, span := zero.Start(context.Background(), "op")
	assert.True(t, span.IsRecording(), "the zero tracer samples roots")
	assert.Same(t, span, SpanFromContext(ctx))
	span.End()

	var nilTracer *Tracer
	//lint:ignore SA1012 nil must not panic
	ctx, span = nilTracer.Start(nil, "op")
	assert.Nil(t, span)
	assert.NotNil(t, ctx)
	require.NoError(t, nilTracer.ForceFlush(context.Background()))
	require.NoError(t, nilTracer.Shutdown(context.Background()), "a nil tracer has nothing to shut down")
	require.NoError(t, nilTracer.Shutdown(context.Background()))
	//lint:ignore SA1012 nil must not panic
	assert.Nil(t, SpanFromContext(nil))
}

func TestShutdownStopsRecording(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	require.NoError(t, tr.ForceFlush(context.Background()))
	require.NoError(t, tr.Shutdown(context.Background()))
	require.ErrorIs(t, tr.Shutdown(context.Background()), ErrClosed)
	_, span := tr.Start(context.Background(), "late")
	assert.False(t, span.IsRecording())
	assert.True(t, span.SpanContext().IsValid())
	span.End()
	assert.Empty(t, exp.Spans())
}

func TestContextWithSpan(t *testing.T) {
	tr, _ := newTestTracer(t, Options{})
	_, span := tr.Start(context.Background(), "op")
	type key struct{}
	ctx := ContextWithSpan(context.WithValue(context.Background(), key{}, 1), span)
	assert.Same(t, span, SpanFromContext(ctx))
	assert.Equal(t, 1, ctx.Value(key{}), "other values are still found")
	assert.Same(t, span, SpanFromContext(context.WithValue(ctx, key{}, 2)), "found through other contexts")
	//lint:ignore SA1012 nil must not panic
	assert.NotNil(t, ContextWithSpan(nil, span))
	//lint:ignore SA1012 nil must not panic
	assert.NotNil(t, ContextWithRemoteSpanContext(nil, span.SpanContext()))
}

func TestSpanTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, exp := newTestTracer(t, Options{})
		begin := time.Now()
		_, span := tr.Start(context.Background(), "op")
		time.Sleep(3 * time.Second) // fake time: the bubble's clock jumps
		span.End()
		d := onlySpan(t, exp)
		assert.True(t, d.Start.Equal(begin))
		assert.Equal(t, 3*time.Second, d.End.Sub(d.Start))

		at := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
		_, span = tr.Start(context.Background(), "op", WithStartTime(at))
		span.End()
		assert.True(t, exp.Spans()[1].Start.Equal(at))
	})
}

func TestClockAnchorIsRefreshed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr Tracer
		begin := time.Now()
		wall, mono := tr.now()
		assert.Equal(t, begin.UnixNano(), wall)
		assert.Zero(t, mono, "monotonic time counts from the first reading")
		a := tr.anchor.Load()

		time.Sleep(anchorRefresh / 2)
		wall, mono = tr.now()
		assert.Equal(t, begin.Add(anchorRefresh/2).UnixNano(), wall)
		assert.Equal(t, int64(anchorRefresh/2), mono)
		assert.Same(t, a, tr.anchor.Load(), "within the refresh period the anchor stays")

		time.Sleep(anchorRefresh)
		wall, mono = tr.now()
		assert.Equal(t, begin.Add(3*anchorRefresh/2).UnixNano(), wall)
		assert.Equal(t, int64(3*anchorRefresh/2), mono)
		assert.NotSame(t, a, tr.anchor.Load(), "after it the clock is read again")
		assert.Equal(t, time.Second, tr.monoSince(int64(anchorRefresh/2)))
	})
}

func TestStartTimeInThePastKeepsDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, exp := newTestTracer(t, Options{})
		at := time.Now().Add(-time.Minute)
		_, span := tr.Start(context.Background(), "op", WithStartTime(at))
		time.Sleep(time.Second)
		span.End()
		d := onlySpan(t, exp)
		assert.True(t, d.Start.Equal(at))
		assert.Equal(t, time.Minute+time.Second, d.End.Sub(d.Start))
	})
}

func TestAllocations(t *testing.T) {
	tr, err := New(Options{Sampler: AlwaysSample()})
	require.NoError(t, err)
	never, err := New(Options{Sampler: NeverSample()})
	require.NoError(t, err)
	ctx := context.Background()
	tests := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"sampled start+end", 1, func() {
			_, s := tr.Start(ctx, "op")
			s.End()
		}},
		{"not sampled start+end", 1, func() {
			_, s := never.Start(ctx, "op")
			s.End()
		}},
		{"start with four attributes", 1, func() {
			_, s := tr.Start(ctx, "op", WithAttributes(String("a", "1"), Int("b", 2), Bool("c", true), Float64("d", 4)), WithSpanKind(SpanKindClient))
			s.End()
		}},
		{"start with eight attributes", 1, func() {
			_, s := tr.Start(ctx, "op", WithAttributes(Int("a", 1), Int("b", 2), Int("c", 3), Int("d", 4)),
				WithAttributes(Int("e", 5), Int("f", 6), Int("g", 7), Int("h", 8)))
			s.End()
		}},
		{"StartWith, sampled", 1, func() {
			_, s, v := StartWith[companion](tr, ctx, "op")
			v.p = s
			s.End()
		}},
		{"StartWith, not sampled", 1, func() {
			_, s, v := StartWith[companion](never, ctx, "op")
			v.p = s
			s.End()
		}},
		{"StartWith, four attributes", 1, func() {
			_, s, v := StartWith[companion](tr, ctx, "op", WithAttributes(String("a", "1"), Int("b", 2), Bool("c", true), Float64("d", 4)))
			v.p = s
			s.End()
		}},
		{"set attributes after start", 2, func() {
			_, s := tr.Start(ctx, "op")
			s.SetAttributes(Int("a", 1), Int("b", 2), Int("c", 3), Int("d", 4), Int("e", 5))
			s.End()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.LessOrEqual(t, testing.AllocsPerRun(100, tt.fn), tt.max)
		})
	}
}

// companion stands for a bridge's per-span object in the StartWith tests.
type companion struct {
	p    *Span
	name string
}

// TestStartWith checks that StartWith starts the span Start would, for every allocation shape
// (not sampled, sampled, two, four and eight start attributes), and that its V is zero, separate
// per span and kept alive by the span.
func TestStartWith(t *testing.T) {
	attrs := []Attr{Int("a", 1), Int("b", 2), Int("c", 3), Int("d", 4), Int("e", 5), Int("f", 6), Int("g", 7), Int("h", 8), Int("i", 9)}
	for _, n := range []int{0, 1, 2, 3, 4, 5, 8, 9} {
		for _, sampled := range []bool{true, false} {
			sampler := AlwaysSample()
			if !sampled {
				sampler = NeverSample()
			}
			tr, exp := newTestTracer(t, Options{Sampler: sampler})
			pctx, parent := tr.Start(context.Background(), "parent")
			ctx, s, v := StartWith[companion](tr, pctx, "child", WithAttributes(attrs[:n]...), WithSpanKind(SpanKindServer))
			require.NotNil(t, v)
			assert.Equal(t, companion{}, *v)
			v.p, v.name = s, "mine"
			_, s2, v2 := StartWith[companion](tr, pctx, "other")
			assert.NotSame(t, v, v2)
			assert.Same(t, s, SpanFromContext(ctx))
			assert.Equal(t, parent.SpanContext().TraceID, s.SpanContext().TraceID)
			assert.Equal(t, sampled, s.IsRecording())
			s.SetAttributes(String("late", "x"))
			s2.End()
			s.End()
			parent.End()
			assert.Equal(t, "mine", v.name)
			if !sampled {
				assert.Empty(t, exp.Spans())
				continue
			}
			d := exp.Spans()[1]
			assert.Equal(t, "child", d.Name)
			assert.Equal(t, SpanKindServer, d.Kind)
			assert.Equal(t, parent.SpanContext().SpanID, d.Parent.SpanID)
			assert.Equal(t, append(append([]Attr(nil), attrs[:n]...), String("late", "x")), d.Attributes)
		}
	}
	ctx, s, v := StartWith[companion](nil, context.Background(), "op")
	assert.Nil(t, s)
	assert.NotNil(t, v)
	assert.NotNil(t, ctx)
}
