package tracing

import (
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"math/rand/v2"
)

// TraceID identifies a trace: 16 bytes, all zero meaning invalid.
type TraceID [16]byte

// SpanID identifies a span within a trace: 8 bytes, all zero meaning invalid.
type SpanID [8]byte

// IsValid reports whether id has a non-zero byte.
func (id TraceID) IsValid() bool { return id != TraceID{} }

// IsValid reports whether id has a non-zero byte.
func (id SpanID) IsValid() bool { return id != SpanID{} }

// String returns id as 32 lowercase hex digits, the form of traceparent and OTLP JSON.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// String returns id as 16 lowercase hex digits, the form of traceparent and OTLP JSON.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// TraceFlags are the flags of W3C Trace Context: bit 0 says the caller sampled the trace.
type TraceFlags byte

const (
	// FlagSampled marks a trace whose spans are recorded and exported.
	FlagSampled TraceFlags = 0x01
	// FlagRandom (W3C Trace Context level 2) says the right-most 7 bytes of the trace ID are random.
	FlagRandom TraceFlags = 0x02
)

// knownFlags are the flags girder passes on; others are cleared, as the specification asks.
const knownFlags = FlagSampled | FlagRandom

// IsSampled reports whether FlagSampled is set.
func (f TraceFlags) IsSampled() bool { return f&FlagSampled != 0 }

// SpanContext is the part of a span that crosses process boundaries: the IDs, the flags and the
// vendor-specific trace state. Its zero value is invalid and means "no span".
type SpanContext struct {
	TraceID TraceID
	SpanID  SpanID
	State   TraceState
	Flags   TraceFlags
	Remote  bool // the span context came from another process (Extract)
}

// IsValid reports whether both IDs are non-zero.
func (sc SpanContext) IsValid() bool { return sc.TraceID.IsValid() && sc.SpanID.IsValid() }

// IsSampled reports whether the trace is sampled.
func (sc SpanContext) IsSampled() bool { return sc.Flags.IsSampled() }

// newTraceID draws 16 random bytes from the runtime's per-thread generator, which takes no lock.
// It never returns the invalid all-zero ID.
func newTraceID() (id TraceID) {
	hi, lo := rand.Uint64(), rand.Uint64()
	for hi|lo == 0 {
		hi, lo = rand.Uint64(), rand.Uint64()
	}
	binary.BigEndian.PutUint64(id[:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id
}

// newRootIDs sets the IDs of a new trace's root span: a new trace ID and the span ID derived
// from it.
func newRootIDs(traceID *TraceID, spanID *SpanID) {
	hi, lo := rand.Uint64(), rand.Uint64()
	for hi|lo == 0 {
		hi, lo = rand.Uint64(), rand.Uint64()
	}
	binary.BigEndian.PutUint64(traceID[:8], hi)
	binary.BigEndian.PutUint64(traceID[8:], lo)
	*spanID = rootSpanIDOf(hi, lo)
}

// newSpanID draws 8 random bytes; it never returns the invalid all-zero ID.
func newSpanID() (id SpanID) {
	v := rand.Uint64()
	for v == 0 {
		v = rand.Uint64()
	}
	binary.BigEndian.PutUint64(id[:], v)
	return id
}

// rootSpanID derives the span ID of a new trace's root span from its trace ID, which is fresh
// random bits, instead of drawing more: a root span is the only span of its trace whose ID
// comes from the trace ID, so span IDs stay unique within the trace. The mix (SplitMix64's
// finalizer) is a bijection of 64 bits that spreads every input bit over the output.
func rootSpanID(t TraceID) SpanID {
	return rootSpanIDOf(binary.BigEndian.Uint64(t[:8]), binary.BigEndian.Uint64(t[8:]))
}

// rootSpanIDOf is rootSpanID of the trace ID whose halves are hi and lo.
func rootSpanIDOf(hi, lo uint64) (id SpanID) {
	v := hi ^ bits.RotateLeft64(lo, 32)
	v ^= v >> 30
	v *= 0xbf58476d1ce4e5b9
	v ^= v >> 27
	v *= 0x94d049bb133111eb
	v ^= v >> 31
	if v == 0 {
		return newSpanID()
	}
	binary.BigEndian.PutUint64(id[:], v)
	return id
}

const hexDigits = "0123456789abcdef"

// appendHex appends src as lowercase hex without allocating.
func appendHex(dst, src []byte) []byte {
	for _, c := range src {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return dst
}

// hex8 returns the 8 lowercase hex digits of v, the first digit in the lowest byte, so that
// writing the result little-endian puts them in reading order. It works on all eight digits at
// once (SWAR) instead of looking each up in a table.
func hex8(v uint32) uint64 {
	x := uint64(bits.ReverseBytes32(v)) // the first byte of v in the lowest byte
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff // byte i of v in the low byte of 16-bit lane i
	n := (x>>4)&0x000f000f000f000f | (x&0x000f000f000f000f)<<8
	// Each byte of n is a digit's value, 0 to 15; those above 9 skip the 39 bytes between '9'
	// and 'a'. No byte carries into the next: the largest sum is 'f'.
	above9 := (n + 0x0606060606060606) >> 4 & 0x0101010101010101
	return n + 0x3030303030303030 + above9*39
}

// unhex decodes lowercase hex digits into dst (len(s) == 2*len(dst)); uppercase is rejected, as
// W3C Trace Context requires. A traceparent's IDs go through unhex16 instead.
func unhex(dst []byte, s string) bool {
	var bad byte
	for i := range dst {
		hi, lo := hexVal[s[2*i]], hexVal[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo
	}
	return bad&0xf0 == 0
}

// unhex16 decodes the first 16 digits of s, all at once (SWAR): the eight bytes come back in
// reading order from the lowest byte up, and bad is nonzero when a character is not a lowercase
// hex digit. It is the inverse of hex8 over two words.
func unhex16(s string) (v, bad uint64) {
	_ = s[15]
	lo, badLo := unhexWord(uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56)
	hi, badHi := unhexWord(uint64(s[8]) | uint64(s[9])<<8 | uint64(s[10])<<16 | uint64(s[11])<<24 |
		uint64(s[12])<<32 | uint64(s[13])<<40 | uint64(s[14])<<48 | uint64(s[15])<<56)
	return lo | hi<<32, badLo | badHi
}

// unhexWord decodes the eight digits in x (the first in the lowest byte) into 32 bits, the first
// byte lowest; bad is nonzero when a byte is not a lowercase hex digit.
func unhexWord(x uint64) (v, bad uint64) {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	// For bytes below 0x80, adding 0x80-lo sets a byte's top bit exactly when it is ≥ lo, and no
	// byte carries into the next. A digit is in '0'..'9' or 'a'..'f'.
	digit := (x + (0x80-'0')*ones) &^ (x + (0x80-'9'-1)*ones)
	alpha := (x + (0x80-'a')*ones) &^ (x + (0x80-'f'-1)*ones)
	bad = x&high | ^(digit|alpha)&high
	// A digit's value is its low nibble, plus 9 for a letter (bit 6 set).
	n := x&0x0f0f0f0f0f0f0f0f + (x>>6&ones)*9
	n = (n<<4 | n>>8) & 0x00ff00ff00ff00ff // byte 2k: digit 2k's value × 16 + digit 2k+1's
	n = (n | n>>8) & 0x0000ffff0000ffff
	return (n | n>>16) & 0xffffffff, bad
}

// hexVal maps '0'-'9' and 'a'-'f' to their values and every other byte to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range 10 {
		t['0'+i] = byte(i)
	}
	for i := range 6 {
		t['a'+i] = byte(10 + i)
	}
	return t
}()
