package otelbridge

import (
	"testing"
	"unsafe"
)

// TestSpanLayout pins the bytes a span adds to girder's allocation (tracing.StartWith): 16, which
// keeps a span that is not recording at 80 bytes, a recording one at 144 and one with four start
// attributes at 384, each a Go size class (see tracing's TestSpanLayout). 64-bit platforms only.
func TestSpanLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are laid out for 64-bit platforms")
	}
	if got := unsafe.Sizeof(span{}); got != 16 {
		t.Fatalf("span is %d bytes, want 16", got)
	}
}
