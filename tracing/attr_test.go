package tracing

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValues(t *testing.T) {
	tests := []struct {
		name  string
		attr  Attr
		kind  Kind
		str   string
		check func(Value) bool
	}{
		{"string", String("k", "v"), KindString, "v", func(v Value) bool { return v.AsString() == "v" && v.AsInt64() == 0 }},
		{"int", Int("k", -3), KindInt64, "-3", func(v Value) bool { return v.AsInt64() == -3 && v.AsString() == "" }},
		{"int64", Int64("k", math.MaxInt64), KindInt64, "9223372036854775807", func(v Value) bool { return v.AsInt64() == math.MaxInt64 }},
		{"float", Float64("k", 1.5), KindFloat64, "1.5", func(v Value) bool { return v.AsFloat64() == 1.5 && !v.AsBool() }},
		{"bool", Bool("k", true), KindBool, "true", func(v Value) bool { return v.AsBool() && v.AsFloat64() == 0 }},
		{"false", Bool("k", false), KindBool, "false", func(v Value) bool { return !v.AsBool() }},
		{"empty", Attr{Key: "k"}, KindEmpty, "", func(v Value) bool { return v.AsInt64() == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.attr.Value
			assert.Equal(t, tt.kind, v.Kind())
			assert.Equal(t, tt.str, v.String())
			assert.Equal(t, "k="+tt.str, tt.attr.String())
			assert.True(t, tt.check(v))
			assert.True(t, v.Equal(v))
		})
	}
	assert.True(t, Float64Value(math.NaN()).Equal(Float64Value(math.NaN())))
	assert.Equal(t, "Kind(9)", Kind(9).String())
	assert.Equal(t, "bool", KindBool.String())
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"héllo", 2, "h"}, // é is two bytes: not split
		{"héllo", 3, "hé"},
		{"日本", 4, "日"},
		{"abc", 0, ""},
		{"abc", -1, "abc"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, StringValue(tt.in).truncate(tt.n).AsString(), "%q to %d", tt.in, tt.n)
	}
	assert.Equal(t, Int64Value(5), Int64Value(5).truncate(0))
}
