package replica

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNoPrimaryError(t *testing.T) {
	err := error(&NoPrimaryError{Nodes: []NodeError{{"a", io.EOF}, {"b", ErrInRecovery}}})
	assert.Equal(t, "replica: no primary: a: EOF; b: in recovery", err.Error())
	assert.ErrorIs(t, err, ErrNoPrimary)
	assert.ErrorIs(t, err, io.EOF)
	assert.ErrorIs(t, err, ErrInRecovery)
	assert.NotErrorIs(t, err, ErrNoReplica)
	var ne NodeError
	assert.ErrorAs(t, err, &ne)
	assert.Equal(t, "a", ne.Node)
	assert.Equal(t, "replica: no primary", (&NoPrimaryError{}).Error())
}

func TestNoReplicaError(t *testing.T) {
	err := error(&NoReplicaError{Nodes: []NodeError{{"r", ErrNotChecked}}})
	assert.Equal(t, "replica: no fit replica: r: not checked yet", err.Error())
	assert.ErrorIs(t, err, ErrNoReplica)
	assert.ErrorIs(t, err, ErrNotChecked)
	assert.NotErrorIs(t, err, ErrNoPrimary)
}

func TestCtxErrKeepsCause(t *testing.T) {
	assert.NoError(t, ctxErr(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Equal(t, context.Canceled, ctxErr(ctx))
	cause := errors.New("shutting down")
	ctx, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(cause)
	err := ctxErr(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, cause)
}

func TestErrRow(t *testing.T) {
	var s string
	assert.ErrorIs(t, errRow{ErrClosed}.Scan(&s), ErrClosed)
}
