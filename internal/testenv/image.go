package testenv

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// imageDirRel is the image's directory relative to the module root, as the fix commands name it.
const imageDirRel = "internal/testenv/image"

// imageOps is what ensureImage needs from the engine and the machine; tests replace it.
type imageOps interface {
	// exists reports whether the engine has the image.
	exists(ctx context.Context, image string) (bool, error)
	// lock serializes builds across test binaries (go test runs packages in parallel).
	lock(image string) (unlock func(), err error)
	// pullBase pulls the Dockerfile's base image (a no-op when the engine has it).
	pullBase(ctx context.Context) error
	// buildDockerfile builds image from the Dockerfile.
	buildDockerfile(ctx context.Context, image string) error
	// scriptUsable returns nil when the offline script can run here, or why it cannot.
	scriptUsable() error
	// runScript builds image with the offline script.
	runScript(ctx context.Context, image string) error
}

// MissingImageError says the test image is missing and could not be built, and the one command that
// builds it.
type MissingImageError struct {
	Image string
	Fix   string // the command that builds the image, run from the module root
	Err   error  // why the harness could not build it itself
}

func (e *MissingImageError) Error() string {
	return fmt.Sprintf("test image %s is missing and could not be built here (%v); build it with: %s", e.Image, e.Err, e.Fix)
}

func (e *MissingImageError) Unwrap() error { return e.Err }

// fixCommand is the one command that builds image on this machine: the offline script on Linux (as
// root: it runs debootstrap), the Dockerfile elsewhere.
func fixCommand(image string, goos string, uid int) string {
	if goos != "linux" {
		return fmt.Sprintf("docker build -t %s %s", image, imageDirRel)
	}
	cmd := fmt.Sprintf("%s/build.sh %s", imageDirRel, image)
	if uid != 0 {
		cmd = "sudo " + cmd
	}
	return cmd
}

// ensureImage makes sure the engine has image: if it is missing, it builds it once across every test
// binary running on this machine, from the Dockerfile when its base image can be pulled, else with
// the offline script when this machine can run it, and says which with one line through say. When it
// cannot build the image it returns a *MissingImageError naming the command that would.
func ensureImage(ctx context.Context, ops imageOps, image string, say func(string)) error {
	ok, err := ops.exists(ctx, image)
	if err != nil {
		return fmt.Errorf("look up test image %s: %w", image, err)
	}
	if ok {
		return nil
	}
	unlock, err := ops.lock(image)
	if err != nil {
		return fmt.Errorf("lock for building test image %s: %w", image, err)
	}
	defer unlock()
	// Another test binary may have built it while this one waited for the lock.
	if ok, err := ops.exists(ctx, image); err != nil {
		return fmt.Errorf("look up test image %s: %w", image, err)
	} else if ok {
		return nil
	}
	fix := fixCommand(image, runtime.GOOS, os.Getuid())
	pullErr := ops.pullBase(ctx)
	if pullErr == nil {
		say(fmt.Sprintf("testenv: test image %s is missing; building it once from %s/Dockerfile", image, imageDirRel))
		if err := ops.buildDockerfile(ctx, image); err != nil {
			return &MissingImageError{Image: image, Fix: fixCommand(image, "", 0), Err: fmt.Errorf("docker build: %w", err)}
		}
		return nil
	}
	if err := ops.scriptUsable(); err != nil {
		return &MissingImageError{Image: image, Fix: fix, Err: errors.Join(
			fmt.Errorf("base image cannot be pulled: %w", pullErr),
			fmt.Errorf("offline build cannot run: %w", err))}
	}
	say(fmt.Sprintf("testenv: test image %s is missing and its base image cannot be pulled; building it once, offline, with %s/build.sh (about a minute)", image, imageDirRel))
	if err := ops.runScript(ctx, image); err != nil {
		return &MissingImageError{Image: image, Fix: fix, Err: fmt.Errorf("build.sh: %w", err)}
	}
	return nil
}

// engineOps builds the image with the engine found by probe.
type engineOps struct {
	c   *client.Client
	dir string // the image directory: Dockerfile, build.sh, entrypoint.sh
}

// imageDir is the directory of the image's sources, next to this file.
func imageDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the testenv sources")
	}
	dir := filepath.Join(filepath.Dir(file), "image")
	if _, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil {
		return "", fmt.Errorf("image sources not found next to the testenv package: %w", err)
	}
	return dir, nil
}

func (o engineOps) exists(ctx context.Context, image string) (bool, error) {
	res, err := o.c.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", image)})
	if err != nil {
		return false, err
	}
	return len(res.Items) > 0, nil
}

func (o engineOps) lock(image string) (func(), error) {
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == ':' || r == '\\' {
			return '_'
		}
		return r
	}, image)
	return lockFile(filepath.Join(os.TempDir(), "girder-testenv-build-"+name+".lock"))
}

// baseImage reads the FROM line of the Dockerfile.
func baseImage(dockerfile []byte) (string, error) {
	s := bufio.NewScanner(bytes.NewReader(dockerfile))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) >= 2 && strings.EqualFold(f[0], "FROM") {
			return f[1], nil
		}
	}
	return "", errors.New("no FROM line in the Dockerfile")
}

func (o engineOps) pullBase(ctx context.Context) error {
	if o.dir == "" {
		return errors.New("image sources not found")
	}
	df, err := os.ReadFile(filepath.Join(o.dir, "Dockerfile"))
	if err != nil {
		return err
	}
	base, err := baseImage(df)
	if err != nil {
		return err
	}
	if ok, err := o.exists(ctx, base); err == nil && ok {
		return nil
	}
	r, err := o.c.ImagePull(ctx, base, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", base, err)
	}
	defer r.Close()
	if err := r.Wait(ctx); err != nil {
		return fmt.Errorf("pull %s: %w", base, err)
	}
	return nil
}

func (o engineOps) buildDockerfile(ctx context.Context, image string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"Dockerfile", "entrypoint.sh"} {
		b, err := os.ReadFile(filepath.Join(o.dir, name))
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b))}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := o.c.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{image}, Remove: true})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return buildStreamError(res.Body)
}

// buildStreamError reads a build's JSON message stream to its end and returns the error it reports.
func buildStreamError(r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Stream != "" {
			tail = append(tail, strings.TrimRight(m.Stream, "\n"))
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
		if m.Error != nil {
			return fmt.Errorf("%s\n%s", m.Error.Message, strings.Join(tail, "\n"))
		}
	}
}

func (o engineOps) scriptUsable() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("build.sh runs debootstrap, which needs Linux (this is %s)", runtime.GOOS)
	}
	if o.dir == "" {
		return errors.New("image sources not found")
	}
	if os.Getuid() != 0 {
		return errors.New("build.sh runs debootstrap, which needs root")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("build.sh needs the docker command (docker import)")
	}
	_, errDebootstrap := exec.LookPath("debootstrap")
	_, errApt := exec.LookPath("apt-get")
	if errDebootstrap != nil && errApt != nil {
		return errors.New("build.sh needs debootstrap, or apt-get to install it")
	}
	return nil
}

func (o engineOps) runScript(ctx context.Context, image string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(o.dir, "build.sh"), image)
	// The engine probe found may not be the docker command's default one.
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+o.c.DaemonHost())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, bytes.TrimSpace(out))
	}
	return nil
}
