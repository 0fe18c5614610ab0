package tracing

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIDs(t *testing.T) {
	assert.False(t, TraceID{}.IsValid())
	assert.False(t, SpanID{}.IsValid())
	id := TraceID{0x4b, 0xf9, 15: 0x36}
	assert.Equal(t, "4bf90000000000000000000000000036", id.String())
	assert.Equal(t, "00000000000000ff", SpanID{7: 0xff}.String())

	seen := map[TraceID]bool{}
	spans := map[SpanID]bool{}
	for range 1000 {
		tid, sid := newTraceID(), newSpanID()
		assert.True(t, tid.IsValid())
		assert.True(t, sid.IsValid())
		seen[tid] = true
		spans[sid] = true
	}
	assert.Len(t, seen, 1000)
	assert.Len(t, spans, 1000)
}

func TestUnhex(t *testing.T) {
	var b [2]byte
	assert.True(t, unhex(b[:], "0aff"))
	assert.Equal(t, [2]byte{0x0a, 0xff}, b)
	assert.False(t, unhex(b[:], "0AFF"), "uppercase is not allowed")
	assert.False(t, unhex(b[:], "0g00"))
	assert.Equal(t, "0aff", string(appendHex(nil, []byte{0x0a, 0xff})))
}

// TestHex8 checks the SWAR hex encoder against encoding/hex on edge values and random ones.
func TestHex8(t *testing.T) {
	vals := []uint32{0, 1, 9, 10, 15, 16, 0x99999999, 0xaaaaaaaa, 0x9a9a9a9a, 0xa9a9a9a9, 0x0123abcd, 0xfedc9876, 0xffffffff}
	for range 1000 {
		vals = append(vals, rand.Uint32())
	}
	for _, v := range vals {
		var got, src [8]byte
		binary.LittleEndian.PutUint64(got[:], hex8(v))
		binary.BigEndian.PutUint32(src[:], v)
		require.Equal(t, hex.EncodeToString(src[:4]), string(got[:]), "%#x", v)
	}
}

// unhexRef is the byte-at-a-time decoder unhex must agree with: lowercase hex only.
func unhexRef(s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, false
		}
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

// checkUnhex checks unhex on s, and unhex16 on its first 16 digits, against unhexRef.
func checkUnhex(t *testing.T, s string) {
	t.Helper()
	s = s[:len(s)&^1]
	want, wantOK := unhexRef(s)
	got := make([]byte, len(s)/2)
	ok := unhex(got, s)
	require.Equal(t, wantOK, ok, "unhex %q", s)
	if ok {
		require.Equal(t, want, got, "unhex %q", s)
	}
	if len(s) < 16 {
		return
	}
	want, wantOK = unhexRef(s[:16])
	v, bad := unhex16(s)
	require.Equal(t, wantOK, bad == 0, "unhex16 %q", s)
	if wantOK {
		require.Equal(t, want, binary.LittleEndian.AppendUint64(nil, v), "unhex16 %q", s)
	}
}

// TestUnhexEveryByte puts every byte value at every position of 16 digits, next to letters and
// digits at the range edges.
func TestUnhexEveryByte(t *testing.T) {
	for _, base := range []string{"0123456789abcdef", "09af90fa0f9aa9f0", "ffffffff00000000", "9a9a9a9a9a9a9a9a"} {
		for i := range len(base) {
			for c := range 256 {
				b := []byte(base)
				b[i] = byte(c)
				checkUnhex(t, string(b))
			}
		}
	}
}

func FuzzUnhex(f *testing.F) {
	f.Add("4bf92f3577b34da6a3ce929d0e0e4736")
	f.Add("00f067aa0ba902b7")
	f.Add("0AFF")
	f.Fuzz(checkUnhex)
}

func TestRootSpanID(t *testing.T) {
	tests := []struct {
		name string
		id   TraceID
	}{
		{"low bits only", TraceID{15: 1}},
		{"high bits only", TraceID{0: 1}},
		{"both halves", TraceID{0: 0xab, 7: 0x01, 8: 0x02, 15: 0xcd}},
		{"random", newTraceID()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rootSpanID(tt.id)
			if !got.IsValid() {
				t.Fatalf("rootSpanID(%v) is invalid", tt.id)
			}
			if again := rootSpanID(tt.id); again != got {
				t.Fatalf("rootSpanID(%v) = %v, then %v", tt.id, got, again)
			}
		})
	}
	// Root spans of distinct traces get distinct span IDs, and children of a root draw their own.
	tr, err := New(Options{Sampler: AlwaysSample()})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[SpanID]bool)
	for range 10000 {
		ctx, root := tr.Start(context.Background(), "root")
		_, child := tr.Start(ctx, "child")
		sc, cc := root.SpanContext(), child.SpanContext()
		if sc.SpanID != rootSpanID(sc.TraceID) {
			t.Fatalf("root span %v: ID not derived from its trace ID", sc)
		}
		if seen[sc.SpanID] || cc.SpanID == sc.SpanID {
			t.Fatalf("span ID %v repeated", sc.SpanID)
		}
		seen[sc.SpanID] = true
	}
}
