package cache

import (
	"encoding/json"
	"fmt"
)

// Codec turns values into bytes and back, for levels and journals that store bytes (Redis).
// Implementations must be safe for concurrent use.
type Codec[T any] interface {
	Marshal(v T) ([]byte, error)
	Unmarshal(data []byte) (T, error)
}

// JSON is the default Codec: encoding/json, so values of any JSON-encodable type work and stay
// readable with redis-cli.
type JSON[T any] struct{}

// Marshal encodes v as JSON.
func (JSON[T]) Marshal(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cache: json encode: %w", err)
	}
	return b, nil
}

// Unmarshal decodes JSON into a new T.
func (JSON[T]) Unmarshal(data []byte) (T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("cache: json decode: %w", err)
	}
	return v, nil
}

// Compile-time check that JSON satisfies Codec.
var _ Codec[int] = JSON[int]{}
