package testenv

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeOps records what ensureImage asks of the engine and the machine.
type fakeOps struct {
	have      bool  // the engine has the image
	appear    bool  // the image appears while waiting for the lock (another binary built it)
	pullErr   error // pulling the base image fails
	buildErr  error
	scriptErr error // the offline script cannot run here
	runErr    error
	calls     []string
}

func (f *fakeOps) call(s string) { f.calls = append(f.calls, s) }

func (f *fakeOps) exists(context.Context, string) (bool, error) {
	f.call("exists")
	return f.have, nil
}

func (f *fakeOps) lock(string) (func(), error) {
	f.call("lock")
	if f.appear {
		f.have = true
	}
	return func() { f.call("unlock") }, nil
}

func (f *fakeOps) pullBase(context.Context) error { f.call("pull"); return f.pullErr }

func (f *fakeOps) buildDockerfile(context.Context, string) error {
	f.call("dockerfile")
	if f.buildErr == nil {
		f.have = true
	}
	return f.buildErr
}

func (f *fakeOps) scriptUsable() error { f.call("usable?"); return f.scriptErr }

func (f *fakeOps) runScript(context.Context, string) error {
	f.call("script")
	if f.runErr == nil {
		f.have = true
	}
	return f.runErr
}

func TestEnsureImage(t *testing.T) {
	noPull := errors.New("registry unreachable")
	tests := []struct {
		name    string
		ops     fakeOps
		calls   string
		said    string // a substring of the one line printed; "" for no line
		wantErr bool
		wantFix string // a substring of MissingImageError.Fix
	}{
		{name: "image present: nothing to do", ops: fakeOps{have: true}, calls: "exists"},
		{
			name:  "another binary built it while this one waited",
			ops:   fakeOps{appear: true},
			calls: "exists lock exists unlock",
		},
		{
			name:  "base image pullable: Dockerfile",
			ops:   fakeOps{},
			calls: "exists lock exists pull dockerfile unlock",
			said:  "building it once from internal/testenv/image/Dockerfile",
		},
		{
			name:  "no registry, script usable: offline build",
			ops:   fakeOps{pullErr: noPull},
			calls: "exists lock exists pull usable? script unlock",
			said:  "building it once, offline, with internal/testenv/image/build.sh",
		},
		{
			name:    "no registry, script unusable: skip with the command",
			ops:     fakeOps{pullErr: noPull, scriptErr: errors.New("needs root")},
			calls:   "exists lock exists pull usable? unlock",
			wantErr: true,
			wantFix: "internal/testenv/image/build.sh girder-testenv:test",
		},
		{
			name:    "offline build fails: skip with the command",
			ops:     fakeOps{pullErr: noPull, runErr: errors.New("no mirror")},
			calls:   "exists lock exists pull usable? script unlock",
			said:    "offline",
			wantErr: true,
			wantFix: "build.sh girder-testenv:test",
		},
		{
			name:    "docker build fails: skip with the docker build command",
			ops:     fakeOps{buildErr: errors.New("apt failed")},
			calls:   "exists lock exists pull dockerfile unlock",
			said:    "Dockerfile",
			wantErr: true,
			wantFix: "docker build -t girder-testenv:test internal/testenv/image",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := tt.ops
			var said []string
			err := ensureImage(context.Background(), &ops, "girder-testenv:test", func(s string) { said = append(said, s) })
			if got := strings.Join(ops.calls, " "); got != tt.calls {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			switch {
			case tt.said == "" && len(said) != 0:
				t.Errorf("said %q, want nothing", said)
			case tt.said != "" && (len(said) != 1 || !strings.Contains(said[0], tt.said)):
				t.Errorf("said %q, want one line containing %q", said, tt.said)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var missing *MissingImageError
			if !errors.As(err, &missing) {
				t.Fatalf("err = %v, want a *MissingImageError", err)
			}
			if !strings.Contains(missing.Fix, tt.wantFix) || !strings.Contains(err.Error(), missing.Fix) {
				t.Errorf("fix %q (in %q), want it to contain %q", missing.Fix, err, tt.wantFix)
			}
		})
	}
}

func TestFixCommand(t *testing.T) {
	tests := []struct {
		goos string
		uid  int
		want string
	}{
		{"linux", 0, "internal/testenv/image/build.sh img:1"},
		{"linux", 1000, "sudo internal/testenv/image/build.sh img:1"},
		{"darwin", 501, "docker build -t img:1 internal/testenv/image"},
	}
	for _, tt := range tests {
		if got := fixCommand("img:1", tt.goos, tt.uid); got != tt.want {
			t.Errorf("fixCommand(%s, %d) = %q, want %q", tt.goos, tt.uid, got, tt.want)
		}
	}
}

func TestBaseImage(t *testing.T) {
	dir, err := imageDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir + "/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	base, err := baseImage(b)
	if err != nil || base != "debian:bookworm-slim" {
		t.Fatalf("baseImage = %q, %v; want debian:bookworm-slim", base, err)
	}
	if _, err := baseImage([]byte("# nothing\n")); err == nil {
		t.Fatal("a Dockerfile without FROM must be an error")
	}
}

// TestLockSerializesBuilders holds the build lock and checks that a second taker waits for it.
func TestLockSerializesBuilders(t *testing.T) {
	path := t.TempDir() + "/build.lock"
	unlock, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		u, err := lockFile(path)
		if err != nil {
			t.Error(err)
		} else {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second lockFile returned while the lock was held")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the second lockFile did not get the lock after it was released")
	}
}
