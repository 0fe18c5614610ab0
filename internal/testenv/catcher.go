package testenv

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// fatalCatcher lets helpers that call t.Fatal run in goroutines other than the test's: Fatal
// records the message and ends the goroutine, and parallel reports it from the test goroutine.
type fatalCatcher struct {
	testing.TB
	msg string
}

type fatalExit struct{}

func (f *fatalCatcher) Helper() {}

func (f *fatalCatcher) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(fatalExit{})
}

func (f *fatalCatcher) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalExit{})
}

func (f *fatalCatcher) Skip(args ...any) { f.Fatal(args...) }

func (f *fatalCatcher) Skipf(format string, args ...any) { f.Fatalf(format, args...) }

func (f *fatalCatcher) recover(msg *string) {
	if r := recover(); r != nil {
		if _, ok := r.(fatalExit); !ok {
			panic(r)
		}
		*msg = f.msg
	}
}

func containsPong(r io.Reader) bool {
	b, _ := io.ReadAll(r)
	return bytes.Contains(b, []byte("PONG"))
}
