package rediscache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"

	"github.com/girder-go/girder/cache"
)

// An invalidation message on the broadcast channel, version 1, is
//
//	version (1 byte, 1) | kind (1 byte) | uvarint len(from) | from | uvarint n | n × (uvarint len(key) | key)
//
// where from is the publishing instance's identity and each key is the key codec's bytes. Every
// length is checked against what is left of the message, so a decoder never reads past it or
// allocates more than it holds; unknown versions and kinds are errors, which the listener treats
// as a lost message.
const broadcastVersion = 1

// Kinds of broadcast message.
const (
	kindKeys byte = 1 // drop the listed keys
)

var errBadMessage = errors.New("rediscache: broadcast: malformed message")

// encodeMessage encodes one message of kindKeys.
func encodeMessage[K comparable](from string, keys []K, codec cache.Codec[K]) ([]byte, error) {
	enc := make([][]byte, len(keys))
	size := 2 + binary.MaxVarintLen64*(2+len(keys)) + len(from)
	for i, k := range keys {
		b, err := codec.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("rediscache: broadcast: encode key %v: %w", k, err)
		}
		enc[i] = b
		size += len(b)
	}
	msg := make([]byte, 0, size)
	msg = append(msg, broadcastVersion, kindKeys)
	msg = binary.AppendUvarint(msg, uint64(len(from)))
	msg = append(msg, from...)
	msg = binary.AppendUvarint(msg, uint64(len(enc)))
	for _, b := range enc {
		msg = binary.AppendUvarint(msg, uint64(len(b)))
		msg = append(msg, b...)
	}
	return msg, nil
}

// decodeMessage decodes a message of encodeMessage. It never panics.
func decodeMessage[K comparable](msg []byte, codec cache.Codec[K]) (from string, keys []K, err error) {
	if len(msg) < 2 {
		return "", nil, errBadMessage
	}
	if msg[0] != broadcastVersion {
		return "", nil, fmt.Errorf("%w: version %d", errBadMessage, msg[0])
	}
	if msg[1] != kindKeys {
		return "", nil, fmt.Errorf("%w: kind %d", errBadMessage, msg[1])
	}
	rest := msg[2:]
	chunk := func() ([]byte, bool) {
		n, w := uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return nil, false
		}
		b := rest[w : w+int(n)]
		rest = rest[w+int(n):]
		return b, true
	}
	f, ok := chunk()
	if !ok {
		return "", nil, errBadMessage
	}
	n, w := uvarint(rest)
	if w <= 0 || n > uint64(len(rest)-w) { // each key takes at least one byte
		return "", nil, errBadMessage
	}
	rest = rest[w:]
	keys = make([]K, 0, n)
	for range n {
		b, ok := chunk()
		if !ok {
			return "", nil, errBadMessage
		}
		k, err := codec.Unmarshal(b)
		if err != nil {
			return "", nil, fmt.Errorf("%w: key: %w", errBadMessage, err)
		}
		keys = append(keys, k)
	}
	if len(rest) != 0 {
		return "", nil, fmt.Errorf("%w: %d trailing bytes", errBadMessage, len(rest))
	}
	return string(f), keys, nil
}

// uvarint is binary.Uvarint that also refuses a number not written in its shortest form, so that a
// message has one encoding only.
func uvarint(b []byte) (uint64, int) {
	n, w := binary.Uvarint(b)
	var tmp [binary.MaxVarintLen64]byte
	if w > 0 && binary.PutUvarint(tmp[:], n) != w {
		return 0, -1
	}
	return n, w
}

// keyCodec is the default Codec of broadcast keys: the exact bytes of keys whose type is made of
// strings, booleans and numbers (and arrays and structs of them, with exported fields). Strings
// are copied byte for byte, so keys that are not valid UTF-8 survive.
type keyCodec[K comparable] struct{}

// defaultKeyCodec returns keyCodec for K, or an error when K holds something with no meaning in
// another process (a pointer, a channel, an interface) or a field it cannot set.
func defaultKeyCodec[K comparable]() (cache.Codec[K], error) {
	t := reflect.TypeFor[K]()
	if err := checkKeyType(t); err != nil {
		return nil, fmt.Errorf("rediscache: broadcast: key type %v needs a KeyCodec: %w", t, err)
	}
	return keyCodec[K]{}, nil
}

func checkKeyType(t reflect.Type) error {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return nil
	case reflect.Array:
		return checkKeyType(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				return fmt.Errorf("field %s is not exported", f.Name)
			}
			if err := checkKeyType(f.Type); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("kind %v cannot travel", t.Kind())
	}
}

// Marshal encodes k. A plain string key is its own bytes.
func (keyCodec[K]) Marshal(k K) ([]byte, error) {
	if s, ok := any(k).(string); ok {
		return []byte(s), nil
	}
	return appendKey(nil, reflect.ValueOf(k)), nil
}

// Unmarshal decodes what Marshal encoded.
func (keyCodec[K]) Unmarshal(data []byte) (K, error) {
	var k K
	if p, ok := any(&k).(*string); ok {
		*p = string(data)
		return k, nil
	}
	rest, err := readKey(data, reflect.ValueOf(&k).Elem())
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d trailing bytes", len(rest))
	}
	return k, err
}

func appendKey(b []byte, v reflect.Value) []byte {
	switch v.Kind() {
	case reflect.String:
		b = binary.AppendUvarint(b, uint64(v.Len()))
		return append(b, v.String()...)
	case reflect.Bool:
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.AppendVarint(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return binary.AppendUvarint(b, v.Uint())
	case reflect.Float32, reflect.Float64:
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v.Float()))
	case reflect.Complex64, reflect.Complex128:
		c := v.Complex()
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(real(c)))
		return binary.BigEndian.AppendUint64(b, math.Float64bits(imag(c)))
	case reflect.Array:
		for i := range v.Len() {
			b = appendKey(b, v.Index(i))
		}
		return b
	default: // reflect.Struct; defaultKeyCodec admits nothing else
		for i := range v.NumField() {
			b = appendKey(b, v.Field(i))
		}
		return b
	}
}

func readKey(b []byte, v reflect.Value) ([]byte, error) {
	short := errors.New("short key")
	switch v.Kind() {
	case reflect.String:
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return nil, short
		}
		v.SetString(string(b[w : w+int(n)]))
		return b[w+int(n):], nil
	case reflect.Bool:
		if len(b) < 1 || b[0] > 1 {
			return nil, errors.New("bad bool")
		}
		v.SetBool(b[0] == 1)
		return b[1:], nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, w := binary.Varint(b)
		if w <= 0 {
			return nil, short
		}
		if v.OverflowInt(x) {
			return nil, errors.New("int overflows")
		}
		v.SetInt(x)
		return b[w:], nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		x, w := binary.Uvarint(b)
		if w <= 0 {
			return nil, short
		}
		if v.OverflowUint(x) {
			return nil, errors.New("uint overflows")
		}
		v.SetUint(x)
		return b[w:], nil
	case reflect.Float32, reflect.Float64:
		if len(b) < 8 {
			return nil, short
		}
		v.SetFloat(math.Float64frombits(binary.BigEndian.Uint64(b)))
		return b[8:], nil
	case reflect.Complex64, reflect.Complex128:
		if len(b) < 16 {
			return nil, short
		}
		v.SetComplex(complex(math.Float64frombits(binary.BigEndian.Uint64(b)), math.Float64frombits(binary.BigEndian.Uint64(b[8:]))))
		return b[16:], nil
	case reflect.Array:
		var err error
		for i := range v.Len() {
			if b, err = readKey(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return b, nil
	default:
		var err error
		for i := range v.NumField() {
			if b, err = readKey(b, v.Field(i)); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
}
