package tracing

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// Kind is the type of an attribute value.
type Kind uint8

// The kinds of attribute values; they map one to one onto OTLP's AnyValue fields.
const (
	KindEmpty Kind = iota
	KindString
	KindInt64
	KindFloat64
	KindBool
)

var kindNames = [...]string{"empty", "string", "int64", "float64", "bool"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is an attribute value: a string, int64, float64 or bool held without boxing, so building
// one never allocates. The zero Value is empty.
type Value struct {
	num  uint64
	str  string
	kind Kind
}

// StringValue returns a string Value.
func StringValue(v string) Value { return Value{kind: KindString, str: v} }

// Int64Value returns an int64 Value.
func Int64Value(v int64) Value { return Value{kind: KindInt64, num: uint64(v)} }

// Float64Value returns a float64 Value.
func Float64Value(v float64) Value { return Value{kind: KindFloat64, num: math.Float64bits(v)} }

// BoolValue returns a bool Value.
func BoolValue(v bool) Value {
	var n uint64
	if v {
		n = 1
	}
	return Value{kind: KindBool, num: n}
}

// Kind returns v's kind.
func (v Value) Kind() Kind { return v.kind }

// AsString returns the string held by v, or "" for other kinds.
func (v Value) AsString() string { return v.str }

// AsInt64 returns the int64 held by v, or 0 for other kinds.
func (v Value) AsInt64() int64 {
	if v.kind != KindInt64 {
		return 0
	}
	return int64(v.num)
}

// AsFloat64 returns the float64 held by v, or 0 for other kinds.
func (v Value) AsFloat64() float64 {
	if v.kind != KindFloat64 {
		return 0
	}
	return math.Float64frombits(v.num)
}

// AsBool returns the bool held by v, or false for other kinds.
func (v Value) AsBool() bool { return v.kind == KindBool && v.num != 0 }

// String formats v for people: strings as they are, numbers and bools as Go prints them.
func (v Value) String() string {
	switch v.kind {
	case KindString:
		return v.str
	case KindInt64:
		return strconv.FormatInt(int64(v.num), 10)
	case KindFloat64:
		return strconv.FormatFloat(math.Float64frombits(v.num), 'g', -1, 64)
	case KindBool:
		return strconv.FormatBool(v.num != 0)
	}
	return ""
}

// Equal reports whether v and w have the same kind and value (floats compare by bits, so NaN
// equals NaN).
func (v Value) Equal(w Value) bool { return v == w }

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

// String formats a as key=value.
func (a Attr) String() string { return a.Key + "=" + a.Value.String() }

// truncate cuts a string value to at most n bytes without splitting a UTF-8 sequence; n < 0
// means no limit.
func (v Value) truncate(n int) Value {
	if v.kind != KindString || n < 0 || len(v.str) <= n {
		return v
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(v.str[cut]) {
		cut--
	}
	v.str = v.str[:cut]
	return v
}
