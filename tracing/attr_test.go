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
		any   any
		str   string
		check func(Value) bool
	}{
		{"string", String("k", "v"), "v", "v", func(v Value) bool { return v.AsString() == "v" && v.AsInt64() == 0 }},
		{"int", Int("k", -3), int64(-3), "-3", func(v Value) bool { return v.AsInt64() == -3 && v.AsString() == "" }},
		{"int64", Int64("k", math.MaxInt64), int64(math.MaxInt64), "9223372036854775807", func(v Value) bool { return v.AsInt64() == math.MaxInt64 }},
		{"float", Float64("k", 1.5), 1.5, "1.5", func(v Value) bool { return v.AsFloat64() == 1.5 && !v.AsBool() }},
		{"bool", Bool("k", true), true, "true", func(v Value) bool { return v.AsBool() && v.AsFloat64() == 0 }},
		{"false", Bool("k", false), false, "false", func(v Value) bool { return !v.AsBool() }},
		{"empty", Attr{Key: "k"}, nil, "", func(v Value) bool { return v.AsInt64() == 0 }},
		{"strings", StringSlice("k", []string{"a", "b"}), []string{"a", "b"}, "[a b]", func(v Value) bool { return v.AsString() == "" }},
		{"int64s", Int64Slice("k", []int64{1, -2}), []int64{1, -2}, "[1 -2]", func(v Value) bool { return v.AsInt64() == 0 }},
		{"float64s", Float64Slice("k", []float64{0.5}), []float64{0.5}, "[0.5]", func(v Value) bool { return v.AsFloat64() == 0 }},
		{"bools", BoolSlice("k", []bool{true, false}), []bool{true, false}, "[true false]", func(v Value) bool { return !v.AsBool() }},
		{"empty slice", StringSlice("k", nil), []string(nil), "[]", func(v Value) bool { return !v.Equal(Value{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.attr.Value
			assert.Equal(t, tt.any, v.Any())
			assert.Equal(t, tt.str, v.String())
			assert.Equal(t, "k="+tt.str, tt.attr.String())
			assert.True(t, tt.check(v))
			assert.True(t, v.Equal(v))
		})
	}
	assert.True(t, Float64Value(math.NaN()).Equal(Float64Value(math.NaN())))
	assert.True(t, StringSlice("k", []string{"a"}).Value.Equal(StringSlice("k", []string{"a"}).Value), "slices compare by content")
	assert.False(t, StringSlice("k", []string{"a"}).Value.Equal(StringSlice("k", []string{"b"}).Value))
	assert.False(t, Int64Slice("k", []int64{1}).Value.Equal(Int64Slice("k", []int64{1, 2}).Value))
}

func TestSliceValueIsACopy(t *testing.T) {
	s := []string{"a", "b"}
	v := StringSlice("k", s).Value
	s[0] = "changed"
	assert.Equal(t, []string{"a", "b"}, v.Any())
	got := v.Any().([]string)
	got[1] = "changed"
	assert.Equal(t, "[a b]", v.String())
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
	assert.Equal(t, []string{"ab", "c"}, StringSlice("k", []string{"abc", "c"}).Value.truncate(2).Any())
}
