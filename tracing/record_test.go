package tracing

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpanLayout pins the sizes the allocations are laid out for: each is a Go size class, so a
// field added anywhere costs the next class up. 64-bit platforms only.
func TestSpanLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are laid out for 64-bit platforms")
	}
	tests := []struct {
		name string
		size uintptr
		want uintptr
	}{
		{"Span (not recording)", unsafe.Sizeof(Span{}), 64},
		{"recordingSpan", unsafe.Sizeof(recordingSpan{}), 128},
		{"extras with four attributes", unsafe.Sizeof(extras4{}), 240},               // size class 256
		{"recordingSpan with four attributes", unsafe.Sizeof(recordingSpan4{}), 368}, // size class 384
		// With the 16 bytes of otelbridge's span (StartWith):
		{"Span and a bridge span", unsafe.Sizeof(spanWith[[2]uintptr]{}), 80},
		{"recordingSpan and a bridge span", unsafe.Sizeof(recordingWith[[2]uintptr]{}), 144},
		{"four attributes and a bridge span", unsafe.Sizeof(recordingWith4[[2]uintptr]{}), 384},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.size, tt.name)
	}
}

func TestRecordStateWord(t *testing.T) {
	var r record
	st, ok := r.lock()
	require.True(t, ok)
	assert.Zero(t, st)
	assert.Equal(t, uint64(stLocked), r.state.Load())
	r.unlock(st | uint64(StatusError)<<stStatusShift)

	require.True(t, r.end(3*time.Second))
	got := r.state.Load()
	assert.Equal(t, uint64(stEnded), got&(stEnded|stLocked))
	assert.Equal(t, StatusError, StatusCode(got&stStatusMask>>stStatusShift), "the status survives End")
	assert.Equal(t, uint64(3*time.Second), got>>stDurShift)
	assert.False(t, r.end(time.Second), "a second End does nothing")
	_, ok = r.lock()
	assert.False(t, ok, "an ended span cannot be locked")
}

// A duration the state word cannot hold, long or negative, ends the span at its true end time.
func TestStartTimesFarFromNow(t *testing.T) {
	tests := []struct {
		name  string
		start time.Duration // from now
	}{
		{"three years ago", -3 * 365 * 24 * time.Hour},
		{"just over the word's range", -time.Duration(stMaxDur) - time.Hour},
		{"an hour ago", -time.Hour},
		{"an hour ahead", time.Hour},
		{"ten years ahead", 10 * 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, Options{})
			start := time.Now().Add(tt.start)
			_, span := tr.Start(context.Background(), "op", WithStartTime(start))
			before := time.Now()
			span.End()
			after := time.Now()
			d := onlySpan(t, exp)
			assert.Equal(t, start.UnixNano(), d.Start.UnixNano())
			// The end is when End was called, as the clock says, within the anchor's drift.
			assert.WithinRange(t, d.End, before.Add(-anchorRefresh), after.Add(anchorRefresh))
		})
	}
}

func TestEndAt(t *testing.T) {
	start := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		end  time.Time
	}{
		{"a second later", start.Add(time.Second)},
		{"five years later", start.Add(5 * 365 * 24 * time.Hour)},
		{"before the start", start.Add(-time.Minute)},
		{"at the start", start},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, Options{})
			_, span := tr.Start(context.Background(), "op", WithStartTime(start))
			span.EndAt(tt.end)
			span.EndAt(tt.end.Add(time.Hour)) // a second end does nothing
			span.End()
			d := onlySpan(t, exp)
			assert.True(t, d.End.Equal(tt.end), "end %v, want %v", d.End, tt.end)
			assert.False(t, span.IsRecording())
		})
	}
}

func TestUnknownSpanKindIsInternal(t *testing.T) {
	tr, exp := newTestTracer(t, Options{})
	_, span := tr.Start(context.Background(), "op", WithSpanKind(SpanKind(9)))
	span.End()
	assert.Equal(t, SpanKindInternal, onlySpan(t, exp).Kind)
}

func TestSpanIsItsContext(t *testing.T) {
	tr, _ := newTestTracer(t, Options{})
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	deadline := time.Now().Add(time.Hour)
	parent, cancelDeadline := context.WithDeadline(parent, deadline)
	defer cancelDeadline()
	ctx, span := tr.Start(parent, "op")
	defer span.End()

	assert.Same(t, span, SpanFromContext(ctx))
	assert.Equal(t, "v", ctx.Value(key{}), "other values come from the parent")
	d, ok := ctx.Deadline()
	assert.True(t, ok)
	assert.True(t, d.Equal(deadline))
	require.NoError(t, ctx.Err())
	cancel()
	<-ctx.Done()
	require.ErrorIs(t, ctx.Err(), context.Canceled)

	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	<-child.Done() // cancellation reaches contexts derived from the span's
	assert.Same(t, span, SpanFromContext(child))
}

// TestAppendNewMatchesSetAttr checks that the one-copy path of SetAttributes and Start keeps
// exactly what adding the attributes one by one keeps, on batches built to hit each reason to
// refuse: empty keys, repeated keys within the batch and against earlier ones, long values and
// the attribute limit.
func TestAppendNewMatchesSetAttr(t *testing.T) {
	keys := []string{"", "a", "b", "ab", "bb", "http.method", "http.status"}
	vals := []Value{StringValue(""), StringValue("xy"), StringValue("long value"), Int64Value(3), BoolValue(true)}
	lim := &Limits{MaxAttributes: 5, MaxAttributeValueLen: 4}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var before, batch []Attr
		for range rng.IntN(4) {
			before = append(before, Attr{keys[1+rng.IntN(len(keys)-1)], vals[rng.IntN(len(vals))]})
		}
		for range rng.IntN(6) {
			batch = append(batch, Attr{keys[rng.IntN(len(keys))], vals[rng.IntN(len(vals))]})
		}
		slow, fast := newExtras(len(before)), newExtras(len(before))
		for _, a := range before {
			slow.setAttr(a, lim)
			fast.setAttr(a, lim)
		}
		for _, a := range batch {
			slow.setAttr(a, lim)
		}
		if len(fast.attrs)+len(batch) > cap(fast.attrs) {
			fast.grow(len(batch), lim.attrs())
		}
		if !fast.appendNew(batch, lim) {
			for _, a := range batch {
				fast.setAttr(a, lim)
			}
		}
		require.Equal(t, len(slow.attrs), len(fast.attrs), "before %v, batch %v", before, batch)
		if len(slow.attrs) > 0 {
			require.Equal(t, slow.attrs, fast.attrs, "before %v, batch %v", before, batch)
		}
		require.Equal(t, droppedAttrs(slow), droppedAttrs(fast), "before %v, batch %v", before, batch)
	}
}

func droppedAttrs(x *extras) int {
	if x.rare == nil {
		return 0
	}
	return x.rare.droppedAttrs
}
