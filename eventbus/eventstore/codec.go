package eventstore

import (
	"encoding/json"
	"fmt"
)

// Codec turns typed events (or aggregate states, for snapshots) into bytes and back: the same
// shape as eventbus/redisstream's. Implementations must be safe for concurrent use.
type Codec[E any] interface {
	Marshal(e E) ([]byte, error)
	Unmarshal(data []byte) (E, error)
}

// JSON is the default Codec: encoding/json, readable in the events table.
type JSON[E any] struct{}

// Marshal encodes e as JSON.
func (JSON[E]) Marshal(e E) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("eventstore: json encode: %w", err)
	}
	return b, nil
}

// Unmarshal decodes JSON into a new E.
func (JSON[E]) Unmarshal(data []byte) (E, error) {
	var e E
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("eventstore: json decode: %w", err)
	}
	return e, nil
}
