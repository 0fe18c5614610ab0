package writebehind

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// replyError is an error reply of Redis, as go-redis returns it (redis.Error).
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestJournalMoved(t *testing.T) {
	tests := []struct {
		err  error
		addr string
		ok   bool
	}{
		{replyError("MOVED 9736 redis-c5:6379"), "redis-c5:6379", true},
		{fmt.Errorf("wrapped: %w", replyError("MOVED 1 10.0.0.7:6380")), "10.0.0.7:6380", true},
		{replyError("ASK 9736 redis-c5:6379"), "", false},
		{replyError("MOVED"), "", false},
		{errors.New("MOVED 9736 redis-c5:6379"), "", false}, // not a reply from Redis
		{replyError("NOSCRIPT No matching script"), "", false},
	}
	for _, tt := range tests {
		addr, ok := journalMoved(tt.err)
		assert.Equal(t, tt.ok, ok, tt.err.Error())
		assert.Equal(t, tt.addr, addr, tt.err.Error())
	}
}
