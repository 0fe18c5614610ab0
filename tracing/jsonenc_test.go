package tracing

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`quote " and \ backslash`, `"quote \" and \\ backslash"`},
		{"new\nline\ttab\rcr", `"new\nline\ttab\rcr"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"é 日本", `"é 日本"`},
		{"bad \xff utf8", `"bad \ufffd utf8"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"", `""`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(appendJSONString(nil, tt.in)), "%q", tt.in)
	}
}

func TestAppendJSONFloat(t *testing.T) {
	assert.Equal(t, "1.5", string(appendJSONFloat(nil, 1.5)))
	assert.Equal(t, `"NaN"`, string(appendJSONFloat(nil, math.NaN())))
	assert.Equal(t, `"Infinity"`, string(appendJSONFloat(nil, math.Inf(1))))
	assert.Equal(t, `"-Infinity"`, string(appendJSONFloat(nil, math.Inf(-1))))
	assert.Equal(t, `"1000000000"`, string(appendUnixNanoString(nil, time.Unix(1, 0))))
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00", "\xff\xfe", "日本", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(out, &back), "%q gave %s", s, out)
		if utf8.ValidString(s) {
			require.Equal(t, s, back)
		} else {
			require.Equal(t, collapseFFFD(strings.ToValidUTF8(s, "\ufffd")), collapseFFFD(back), "invalid bytes become U+FFFD")
		}
	})
}

func collapseFFFD(s string) string {
	for strings.Contains(s, "\ufffd\ufffd") {
		s = strings.ReplaceAll(s, "\ufffd\ufffd", "\ufffd")
	}
	return s
}
