package tracing

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTraceState(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // canonical form; "" with ok
		ok   bool
	}{
		{"empty", "", "", true},
		{"one member", "rojo=00f067aa0ba902b7", "rojo=00f067aa0ba902b7", true},
		{"two members", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", true},
		{"spaces and empty members", " a=1 ,\t, b=2 ,", "a=1,b=2", true},
		{"only commas", ",,,", "", true},
		{"multi-tenant key", "tenant@system=v", "tenant@system=v", true},
		{"tenant starting with digit", "1tenant@sys=v", "1tenant@sys=v", true},
		{"value with inner space", "a=hello world", "a=hello world", true},
		{"key chars", "a_b-c*d/e=1", "a_b-c*d/e=1", true},
		{"uppercase key", "Rojo=1", "", false},
		{"key starting with digit", "1abc=1", "", false},
		{"no value", "a=", "", false},
		{"no equals", "abc", "", false},
		{"value with equals", "a=b=c", "", false},
		{"value ending in space", "a=b ,c=d", "a=b,c=d", true},
		{"value with control char", "a=b\x01", "", false},
		{"value with non-ASCII", "a=é", "", false},
		{"duplicate key keeps the first", "a=1,b=2,a=3", "a=1,b=2", true},
		{"duplicate member", "foo=1,foo=1", "foo=1", true},
		{"vendor longer than Level 1's 14", "t@abcdefghijklmno=1", "t@abcdefghijklmno=1", true},
		{"two at signs", "a@b@c=1", "a@b@c=1", true},
		{"at sign doubled", "foo@@bar=1,bar=2", "foo@@bar=1,bar=2", true},
		{"trailing at sign", "foo@=1,bar=2", "foo@=1,bar=2", true},
		{"leading at sign", "@foo=1,bar=2", "", false},
		{"key of 256", strings.Repeat("z", 256) + "=1", strings.Repeat("z", 256) + "=1", true},
		{"key of 257", "foo=1," + strings.Repeat("z", 257) + "=1", "", false},
		{"tenant 241 and vendor 14", strings.Repeat("t", 241) + "@" + strings.Repeat("v", 14) + "=1", strings.Repeat("t", 241) + "@" + strings.Repeat("v", 14) + "=1", true},
		{"tenant 242", strings.Repeat("t", 242) + "@v=1", strings.Repeat("t", 242) + "@v=1", true},
		{"key illegal dot", "foo.bar=1", "", false},
		{"key with space", "foo =1", "", false},
		{"32 members", members(32), members(32), true},
		{"33 members", members(33), "", false},
		{"too long to read", "a=" + strings.Repeat("x", maxStateRaw), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := ParseTraceState(tt.in)
			if !tt.ok {
				require.ErrorIs(t, err, ErrInvalidTracestate)
				assert.Equal(t, TraceState{}, ts)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, ts.String())
		})
	}
}

func members(n int) string {
	m := make([]string, n)
	for i := range m {
		m[i] = fmt.Sprintf("k%d=v%d", i, i)
	}
	return strings.Join(m, ",")
}

func TestParseTraceStateTruncates(t *testing.T) {
	long := "big=" + strings.Repeat("x", 200) // over 128: goes first
	small := make([]string, 0, 20)
	for i := range 20 {
		small = append(small, fmt.Sprintf("k%02d=%s", i, strings.Repeat("v", 20))) // 24 characters each
	}
	in := small[0] + "," + long + "," + strings.Join(small[1:], ",")
	ts, err := ParseTraceState(in)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(ts.String()), maxStateLen)
	assert.Empty(t, ts.Get("big"), "entries over 128 characters go first")
	// 20 entries of 24 characters and 19 commas are 499 characters: all of them fit.
	assert.Equal(t, strings.Join(small, ","), ts.String())

	many := make([]string, 0, 30)
	for i := range 30 {
		many = append(many, fmt.Sprintf("k%02d=%s", i, strings.Repeat("v", 20)))
	}
	ts, err = ParseTraceState(strings.Join(many, ","))
	require.NoError(t, err)
	assert.Equal(t, strings.Join(many[:20], ","), ts.String(), "then entries from the end")
}

func TestTraceStateInsertGetDelete(t *testing.T) {
	ts, err := ParseTraceState("a=1,b=2")
	require.NoError(t, err)
	assert.Equal(t, 2, ts.Len())
	assert.Equal(t, "2", ts.Get("b"))
	assert.Empty(t, ts.Get("zz"))

	ts2, err := ts.Insert("b", "3")
	require.NoError(t, err)
	assert.Equal(t, "b=3,a=1", ts2.String(), "updated member moves to the front")
	assert.Equal(t, "a=1,b=2", ts.String(), "the original is unchanged")

	_, err = ts.Insert("B", "1")
	require.ErrorIs(t, err, ErrInvalidTracestate)
	_, err = ts.Insert("c", "x,y")
	require.ErrorIs(t, err, ErrInvalidTracestate)

	assert.Equal(t, "b=2", ts.Delete("a").String())
	assert.Equal(t, ts, ts.Delete("missing"))
	assert.Equal(t, 0, TraceState{}.Len())

	full, err := ParseTraceState(members(32))
	require.NoError(t, err)
	more, err := full.Insert("new", "1")
	require.NoError(t, err)
	assert.Equal(t, 32, more.Len())
	assert.Equal(t, "1", more.Get("new"))
	assert.Empty(t, more.Get("k31"), "the last member makes room")

	var keys []string
	for k := range ts.All() {
		keys = append(keys, k)
		break
	}
	assert.Equal(t, []string{"a"}, keys)
}

func FuzzParseTraceState(f *testing.F) {
	for _, s := range []string{"", "a=1", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", " a=1 , ,b=2", "t@s=v", "a=1,a=2", members(33)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTraceState(s)
		if isCanonicalState(s) {
			// The one-pass check must accept only what the full parser returns unchanged.
			if full, ferr := parseTraceState(s); ferr != nil || full.String() != s {
				t.Fatalf("fast path accepted %q; the parser says %q, %v", s, full, ferr)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidTracestate) || ts != (TraceState{}) {
				t.Fatalf("error %v with state %q", err, ts)
			}
			return
		}
		if len(ts.String()) > maxStateLen || ts.Len() > maxStateMembers {
			t.Fatalf("state %q over the limits", ts)
		}
		again, err := ParseTraceState(ts.String())
		if err != nil || again != ts {
			t.Fatalf("canonical form %q does not parse to itself: %q, %v", ts, again, err)
		}
	})
}

// TestCanonicalStateFastPath pins which states the one-pass check takes and which it leaves to
// the full parser, and that both give the same answer.
func TestCanonicalStateFastPath(t *testing.T) {
	tests := []struct {
		in   string
		fast bool
	}{
		{"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", true},
		{"a=1", true},
		{"a=b c", true},
		{"a= b", true},
		{"k_-*/09=!~", true},
		{members(32), true},
		{members(33), false},                     // over the member limit: an error
		{"", false},                              // empty: no state
		{"a=1,a=2", false},                       // duplicate key: the full parser keeps the first
		{"ab=1,a=2", true},                       // a key that is a prefix of another is not a duplicate
		{"a=1,ab=2", true},                       //
		{"t@s=v", false},                         // multi-tenant key: the full parser
		{" a=1", false},                          // white space to drop
		{"a=1 ", false},                          //
		{"a=1,,b=2", false},                      // empty member to drop
		{"a=1,", false},                          //
		{"a=", false},                            // empty value: an error
		{"a=b ", false},                          // value ending in a space: white space to drop
		{"A=1", false},                           // uppercase key: an error
		{"1a=1", false},                          // simple key starting with a digit: an error
		{"a=1\tb", false},                        // control character: an error
		{strings.Repeat("a", 257) + "=1", false}, // key too long
		{"a=" + strings.Repeat("v", 257), false}, // value too long
		{members(20) + ",y=" + strings.Repeat("v", 250) + ",x=" + strings.Repeat("v", 250), false}, // over 512: truncated
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.fast, isCanonicalState(tt.in))
			got, err := ParseTraceState(tt.in)
			full, ferr := parseTraceState(tt.in)
			assert.Equal(t, full, got)
			assert.Equal(t, ferr == nil, err == nil)
			if tt.fast {
				assert.Equal(t, tt.in, got.String())
			}
		})
	}
}
