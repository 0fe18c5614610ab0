//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package testenv

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// staleLock is how old a lock file may get before it is taken to belong to a test binary that died
// mid-build; a build takes a few minutes at most.
const staleLock = 15 * time.Minute

// lockFile creates path exclusively, waiting while another process holds it (no flock here).
func lockFile(path string) (unlock func(), err error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err == nil {
			f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if fi, serr := os.Stat(path); serr == nil && time.Since(fi.ModTime()) > staleLock {
			_ = os.Remove(path)
			continue
		}
		time.Sleep(time.Second)
	}
}
