//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package testenv

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on path, waiting for whoever holds it. The kernel releases the
// lock when the process exits, so a test binary killed mid-build does not leave it held.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
