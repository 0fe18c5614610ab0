package tracing

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
