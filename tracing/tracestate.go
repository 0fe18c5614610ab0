package tracing

import (
	"fmt"
	"iter"
	"slices"
	"strings"
)

// Limits of W3C Trace Context's tracestate.
const (
	maxStateMembers = 32   // list members in one tracestate
	maxStateLen     = 512  // characters girder passes on; longer states are truncated as the spec says
	maxStateRaw     = 8192 // characters girder reads at all; longer headers are discarded unparsed
	maxStateEntry   = 128  // entries longer than this go first when truncating
)

// TraceState is the W3C tracestate: an ordered list of up to 32 vendor key=value members. It is
// immutable; Insert and Delete return a new TraceState. The zero value is the empty state.
//
// It is held as the canonical header string, so extracting a well-formed header and injecting it
// again costs no allocation.
type TraceState struct {
	s string // canonical: members joined by ",", no spaces around commas, no empty members
}

// ParseTraceState parses a tracestate header value (several header lines joined with ",").
// Empty members and spaces around commas are allowed and dropped. A state longer than 512
// characters is truncated as W3C Trace Context says: entries over 128 characters first, then
// entries from the end. It returns ErrInvalidTracestate, and the empty state, for anything
// malformed: bad keys or values, more than 32 members, more than 8192 characters. A key that
// appears twice keeps its first member, as Level 2 allows.
func ParseTraceState(s string) (TraceState, error) {
	if isCanonicalState(s) {
		return TraceState{s: s}, nil
	}
	return parseTraceState(s)
}

// isCanonicalState reports, in one pass over s, that s is a valid state that needs no change:
// members of a simple key and a value each, no spaces around them, no empty ones, within the
// limits. Anything else (multi-tenant keys, white space, empty members, errors) is left to
// parseTraceState, so what this accepts parseTraceState would return unchanged.
func isCanonicalState(s string) bool {
	if len(s) == 0 || len(s) > maxStateLen {
		return false
	}
	var starts [maxStateMembers]uint16 // where each member seen so far begins
	n := 0
	for i := 0; ; {
		k := i
		if !isLcAlpha(s[i]) {
			return false
		}
		for i++; i < len(s) && keyChars[s[i]]; i++ {
		}
		if i == len(s) || s[i] != '=' || i-k > 256 {
			return false
		}
		keyEq := s[k : i+1] // the key and its '=': a member with the same start has the same key
		i++
		v := i
		for ; i < len(s) && valueChars[s[i]]; i++ {
		}
		if i == v || i-v > 256 || s[i-1] == ' ' || n == maxStateMembers {
			return false
		}
		for _, st := range starts[:n] {
			if st := int(st); st+len(keyEq) <= len(s) && s[st:st+len(keyEq)] == keyEq {
				return false
			}
		}
		starts[n] = uint16(k)
		n++
		if i == len(s) {
			return true
		}
		if s[i] != ',' || i+1 == len(s) {
			return false
		}
		i++
	}
}

// valueChars marks the characters of a value: printable ASCII and space, but not ',' or '='.
var valueChars = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != ',' && c != '='
	}
	return t
}()

// parseTraceState is ParseTraceState for every input: white space, empty members and long states
// are normalised, errors are reported.
func parseTraceState(s string) (TraceState, error) {
	if len(s) > maxStateRaw {
		return TraceState{}, fmt.Errorf("%w: %d characters, more than %d", ErrInvalidTracestate, len(s), maxStateRaw)
	}
	canonical := true
	var keys [maxStateMembers]string // keys seen so far, for the duplicate check
	n := 0
	for rest := s; ; {
		m := rest
		i := strings.IndexByte(rest, ',')
		if i >= 0 {
			m, rest = rest[:i], rest[i+1:]
		}
		t := trimOWS(m)
		if len(t) != len(m) || (t == "" && len(s) > 0) {
			canonical = false
		}
		if t != "" {
			if n == maxStateMembers {
				return TraceState{}, fmt.Errorf("%w: more than %d members", ErrInvalidTracestate, maxStateMembers)
			}
			eq := strings.IndexByte(t, '=')
			if eq < 0 || !validStateKey(t[:eq]) || !validStateValue(t[eq+1:]) {
				return TraceState{}, fmt.Errorf("%w: bad member %q", ErrInvalidTracestate, t)
			}
			key := t[:eq]
			if slices.Contains(keys[:n], key) {
				// Level 2 lets a duplicated key be kept or dropped; girder keeps the first.
				canonical = false
			} else {
				keys[n] = key
				n++
			}
		}
		if i < 0 {
			break
		}
	}
	if canonical && len(s) <= maxStateLen {
		return TraceState{s: s}, nil
	}
	return TraceState{s: normalizeState(s)}, nil
}

// normalizeState rebuilds a valid state without empty members and spaces, then truncates it.
func normalizeState(s string) string {
	members := make([]string, 0, maxStateMembers)
	for m := range strings.SplitSeq(s, ",") {
		if t := trimOWS(m); t != "" && !hasMemberKey(members, t[:strings.IndexByte(t, '=')+1]) {
			members = append(members, t)
		}
	}
	size := func() int {
		n := max(len(members)-1, 0)
		for _, m := range members {
			n += len(m)
		}
		return n
	}
	for i := 0; size() > maxStateLen && i < len(members); {
		if len(members[i]) > maxStateEntry {
			members = append(members[:i], members[i+1:]...)
			continue
		}
		i++
	}
	for size() > maxStateLen {
		members = members[:len(members)-1]
	}
	return strings.Join(members, ",")
}

// hasMemberKey reports whether one of members starts with keyEq, a key and its '='.
func hasMemberKey(members []string, keyEq string) bool {
	for _, m := range members {
		if strings.HasPrefix(m, keyEq) {
			return true
		}
	}
	return false
}

// trimOWS removes the optional white space (spaces and tabs) that HTTP allows around values.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func isLcAlpha(c byte) bool { return c >= 'a' && c <= 'z' }

func isKeyChar(c byte) bool { return keyChars[c] }

// keyChars marks lcalpha / DIGIT / "_" / "-" / "*" / "/".
var keyChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-*/" {
		t[c] = true
	}
	return t
}()

// validStateKey checks a key as Trace Context Level 2 writes it: a lowercase letter, then up to
// 255 of lowercase letters, digits, '_', '-', '*', '/' and '@' (so "tenant@vendor", "foo@" and
// "foo@bar@baz" are keys, and a vendor part may be longer than Level 1's 14 characters). Level 1's
// multi-tenant keys whose tenant starts with a digit ("1tenant@vendor") stay accepted.
func validStateKey(k string) bool {
	if len(k) == 0 || len(k) > 256 {
		return false
	}
	if !isLcAlpha(k[0]) && !(k[0] >= '0' && k[0] <= '9' && strings.IndexByte(k, '@') > 0) {
		return false
	}
	for i := 1; i < len(k); i++ {
		if !isKeyChar(k[i]) && k[i] != '@' {
			return false
		}
	}
	return true
}

// validStateValue checks 0*255(chr) nblk-chr: printable ASCII except ',' and '=', spaces allowed
// but not at the end.
func validStateValue(v string) bool {
	if len(v) == 0 || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !valueChars[v[i]] {
			return false
		}
	}
	return true
}

// String returns the state as a tracestate header value; "" when empty.
func (ts TraceState) String() string { return ts.s }

// Len returns the number of members.
func (ts TraceState) Len() int {
	if ts.s == "" {
		return 0
	}
	return strings.Count(ts.s, ",") + 1
}

// All yields the members in order, key and value.
func (ts TraceState) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		if ts.s == "" {
			return
		}
		for m := range strings.SplitSeq(ts.s, ",") {
			k, v, _ := strings.Cut(m, "=")
			if !yield(k, v) {
				return
			}
		}
	}
}

// Get returns the value of key, or "" when absent.
func (ts TraceState) Get(key string) string {
	for s := ts.s; s != ""; {
		var m string
		m, s, _ = strings.Cut(s, ",")
		if k, v, _ := strings.Cut(m, "="); k == key {
			return v
		}
	}
	return ""
}

// Insert returns a state with key=value as its first member, as the specification wants for the
// vendor that last touched the trace; an earlier member with key is removed, and when the state
// would exceed 32 members the last one is dropped. Invalid keys or values return
// ErrInvalidTracestate and ts unchanged.
func (ts TraceState) Insert(key, value string) (TraceState, error) {
	if !validStateKey(key) || !validStateValue(value) {
		return ts, fmt.Errorf("%w: bad member %q=%q", ErrInvalidTracestate, key, value)
	}
	members := []string{key + "=" + value}
	for k, v := range ts.Delete(key).All() {
		if len(members) == maxStateMembers {
			break
		}
		members = append(members, k+"="+v)
	}
	return TraceState{s: normalizeState(strings.Join(members, ","))}, nil
}

// Delete returns a state without key.
func (ts TraceState) Delete(key string) TraceState {
	if ts.Get(key) == "" {
		return ts
	}
	var kept []string
	for k, v := range ts.All() {
		if k != key {
			kept = append(kept, k+"="+v)
		}
	}
	return TraceState{s: strings.Join(kept, ",")}
}
