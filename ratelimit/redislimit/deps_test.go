package redislimit

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
)

// TestGoRedisDefaultsQuotedInDocs checks the figures RedisOptions.Timeout quotes from go-redis
// against the version in go.mod: 5 s read and write timeouts, and no context deadline without
// ContextTimeoutEnabled.
func TestGoRedisDefaultsQuotedInDocs(t *testing.T) {
	o := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}).Options()
	assert.Equal(t, 5*time.Second, o.ReadTimeout)
	assert.Equal(t, 5*time.Second, o.WriteTimeout)
	assert.False(t, o.ContextTimeoutEnabled)
}
