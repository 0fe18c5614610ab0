package cache

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func newTestMemory(t *testing.T) *Memory[string, int] {
	t.Helper()
	m, err := NewMemory(MemoryOptions[string, int]{MaxSize: 1000, RecordStats: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}
