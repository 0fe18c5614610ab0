package eventstore_test

import (
	"testing"

	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/girder-go/girder/eventbus/eventstore/eventstoretest"
)

func TestMemoryContract(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		m := eventstore.NewMemory()
		t.Cleanup(m.Close)
		return m
	})
}
