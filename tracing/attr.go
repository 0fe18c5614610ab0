package tracing

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// valueKind is the type of an attribute value; the kinds map one to one onto OTLP's AnyValue
// fields.
type valueKind uint8

const (
	kindEmpty valueKind = iota
	kindString
	kindInt64
	kindFloat64
	kindBool
	kindStringSlice
	kindInt64Slice
	kindFloat64Slice
	kindBoolSlice
)

// Value is an attribute value: a string, int64, float64 or bool, or a slice of one of them (the
// attribute types of OpenTelemetry). Scalars are held without boxing, so building one never
// allocates; a slice value holds a copy of the slice. The zero Value is empty.
type Value struct {
	num  uint64
	str  string // the string; for a slice, its elements' address with the element count as length
	kind valueKind
}

// StringValue returns a string Value.
func StringValue(v string) Value { return Value{kind: kindString, str: v} }

// Int64Value returns an int64 Value.
func Int64Value(v int64) Value { return Value{kind: kindInt64, num: uint64(v)} }

// Float64Value returns a float64 Value.
func Float64Value(v float64) Value { return Value{kind: kindFloat64, num: math.Float64bits(v)} }

// BoolValue returns a bool Value.
func BoolValue(v bool) Value {
	var n uint64
	if v {
		n = 1
	}
	return Value{kind: kindBool, num: n}
}

// sliceValue holds a copy of v; an empty slice is held as an empty slice of its kind.
func sliceValue[T any](k valueKind, v []T) Value {
	if len(v) == 0 {
		return Value{kind: k}
	}
	c := slices.Clone(v)
	return Value{kind: k, str: unsafe.String((*byte)(unsafe.Pointer(&c[0])), len(c))}
}

// sliceOf returns the elements a slice value holds; the caller must not modify them.
func sliceOf[T any](v Value) []T {
	if len(v.str) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.StringData(v.str))), len(v.str))
}

// AsString returns the string held by v, or "" for other kinds.
func (v Value) AsString() string {
	if v.kind != kindString {
		return ""
	}
	return v.str
}

// AsInt64 returns the int64 held by v, or 0 for other kinds.
func (v Value) AsInt64() int64 {
	if v.kind != kindInt64 {
		return 0
	}
	return int64(v.num)
}

// AsFloat64 returns the float64 held by v, or 0 for other kinds.
func (v Value) AsFloat64() float64 {
	if v.kind != kindFloat64 {
		return 0
	}
	return math.Float64frombits(v.num)
}

// AsBool returns the bool held by v, or false for other kinds.
func (v Value) AsBool() bool { return v.kind == kindBool && v.num != 0 }

// Any returns the value as a Go value: nil, string, int64, float64, bool, or a fresh copy of a
// []string, []int64, []float64 or []bool. Exporters written outside the package switch on it.
func (v Value) Any() any {
	switch v.kind {
	case kindString:
		return v.str
	case kindInt64:
		return int64(v.num)
	case kindFloat64:
		return math.Float64frombits(v.num)
	case kindBool:
		return v.num != 0
	case kindStringSlice:
		return slices.Clone(sliceOf[string](v))
	case kindInt64Slice:
		return slices.Clone(sliceOf[int64](v))
	case kindFloat64Slice:
		return slices.Clone(sliceOf[float64](v))
	case kindBoolSlice:
		return slices.Clone(sliceOf[bool](v))
	}
	return nil
}

// String formats v for people: strings as they are, numbers and bools as Go prints them, slices
// in brackets.
func (v Value) String() string {
	switch v.kind {
	case kindString:
		return v.str
	case kindInt64:
		return strconv.FormatInt(int64(v.num), 10)
	case kindFloat64:
		return strconv.FormatFloat(math.Float64frombits(v.num), 'g', -1, 64)
	case kindBool:
		return strconv.FormatBool(v.num != 0)
	case kindStringSlice:
		return "[" + strings.Join(sliceOf[string](v), " ") + "]"
	case kindInt64Slice:
		return formatSlice(sliceOf[int64](v), Int64Value)
	case kindFloat64Slice:
		return formatSlice(sliceOf[float64](v), Float64Value)
	case kindBoolSlice:
		return formatSlice(sliceOf[bool](v), BoolValue)
	}
	return ""
}

func formatSlice[T any](s []T, value func(T) Value) string {
	b := []byte{'['}
	for i, e := range s {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, value(e).String()...)
	}
	return string(append(b, ']'))
}

// Equal reports whether v and w have the same kind and value (floats compare by bits, so NaN
// equals NaN; slices compare element by element).
func (v Value) Equal(w Value) bool {
	if v.kind != w.kind || v.num != w.num {
		return false
	}
	switch v.kind {
	case kindStringSlice:
		return slices.Equal(sliceOf[string](v), sliceOf[string](w))
	case kindInt64Slice:
		return slices.Equal(sliceOf[int64](v), sliceOf[int64](w))
	case kindFloat64Slice:
		return slices.EqualFunc(sliceOf[float64](v), sliceOf[float64](w), func(a, b float64) bool {
			return math.Float64bits(a) == math.Float64bits(b)
		})
	case kindBoolSlice:
		return slices.Equal(sliceOf[bool](v), sliceOf[bool](w))
	}
	return v.str == w.str
}

// Attr is a key-value pair describing a span or an event.
type Attr struct {
	Key   string
	Value Value
}

// String returns a string attribute.
func String(key, value string) Attr { return Attr{key, StringValue(value)} }

// Int returns an int64 attribute from an int.
func Int(key string, value int) Attr { return Attr{key, Int64Value(int64(value))} }

// Int64 returns an int64 attribute.
func Int64(key string, value int64) Attr { return Attr{key, Int64Value(value)} }

// Float64 returns a float64 attribute.
func Float64(key string, value float64) Attr { return Attr{key, Float64Value(value)} }

// Bool returns a bool attribute.
func Bool(key string, value bool) Attr { return Attr{key, BoolValue(value)} }

// StringSlice returns an attribute holding a copy of value.
func StringSlice(key string, value []string) Attr {
	return Attr{key, sliceValue(kindStringSlice, value)}
}

// Int64Slice returns an attribute holding a copy of value.
func Int64Slice(key string, value []int64) Attr { return Attr{key, sliceValue(kindInt64Slice, value)} }

// Float64Slice returns an attribute holding a copy of value.
func Float64Slice(key string, value []float64) Attr {
	return Attr{key, sliceValue(kindFloat64Slice, value)}
}

// BoolSlice returns an attribute holding a copy of value.
func BoolSlice(key string, value []bool) Attr { return Attr{key, sliceValue(kindBoolSlice, value)} }

// String formats a as key=value.
func (a Attr) String() string { return a.Key + "=" + a.Value.String() }

// truncate cuts a string value, and each string of a string slice, to at most n bytes without
// splitting a UTF-8 sequence; n < 0 means no limit.
func (v Value) truncate(n int) Value {
	if n < 0 {
		return v
	}
	switch v.kind {
	case kindString:
		v.str = truncateString(v.str, n)
	case kindStringSlice:
		s := sliceOf[string](v)
		if slices.ContainsFunc(s, func(e string) bool { return len(e) > n }) {
			c := make([]string, len(s))
			for i, e := range s {
				c[i] = truncateString(e, n)
			}
			v.str = unsafe.String((*byte)(unsafe.Pointer(&c[0])), len(c))
		}
	}
	return v
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// needsCut reports whether truncate(n) would change v.
func (v Value) needsCut(n int) bool {
	switch v.kind {
	case kindString:
		return len(v.str) > n
	case kindStringSlice:
		return slices.ContainsFunc(sliceOf[string](v), func(e string) bool { return len(e) > n })
	}
	return false
}
