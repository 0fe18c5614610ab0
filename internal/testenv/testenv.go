// Package testenv starts the real Redis and PostgreSQL servers that girder's integration tests run
// against, as containers of one offline-built image (see image/build.sh), through testcontainers-go.
//
// Every container and network is removed by t.Cleanup. Without a Docker engine or without the image,
// Require skips the test with one line saying what is missing; when the environment variable CI is
// "true" it fails the test instead, so CI cannot pass by skipping.
//
// Containers can be stopped and started again (the mapped host port changes: Addr, DSN, and the
// clients and pools made here always dial the current one), paused, and disconnected from their
// network, to inject faults.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// DefaultImage is the image built by image/build.sh; GIRDER_TEST_IMAGE overrides it.
const DefaultImage = "girder-testenv:1"

// Image returns the name of the test image.
func Image() string {
	if s := os.Getenv("GIRDER_TEST_IMAGE"); s != "" {
		return s
	}
	return DefaultImage
}

func init() {
	// Ryuk is an image that cannot be pulled here; t.Cleanup removes what the tests start.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	// testcontainers narrates every container; GIRDER_TESTENV_LOG=1 brings that back.
	if os.Getenv("GIRDER_TESTENV_LOG") == "" {
		tclog.SetDefault(tclog.NewNoopLogger())
	}
	// A local engine (unix socket) publishes ports on this host. testcontainers would take the
	// default gateway instead whenever /.dockerenv exists, which is wrong on a machine that is
	// itself a container running its own engine.
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" {
		if h := os.Getenv("DOCKER_HOST"); h == "" || strings.HasPrefix(h, "unix://") {
			os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
		}
	}
}

var (
	probeOnce sync.Once
	probeErr  error
	docker    *client.Client
)

// probe checks once per process that a Docker engine answers and the image exists.
func probe() error {
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.New(client.FromEnv)
		if err != nil {
			probeErr = fmt.Errorf("no Docker engine: %w", err)
			return
		}
		if _, err := c.Ping(ctx, client.PingOptions{}); err != nil {
			probeErr = fmt.Errorf("no Docker engine: %w", err)
			return
		}
		if _, err := c.ImageInspect(ctx, Image()); err != nil {
			probeErr = fmt.Errorf("test image %s is missing (build it with internal/testenv/image/build.sh): %w", Image(), err)
			return
		}
		docker = c
	})
	return probeErr
}

// Available reports whether integration tests can run here, and if not, why.
func Available() error { return probe() }

// Require skips t when Docker or the test image is missing, or fails it when CI=true.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: integration test skipped in -short mode")
	}
	if err := probe(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testenv: %v (CI=true: integration tests must run)", err)
		}
		t.Skipf("testenv: %v", err)
	}
}

// Container is one running container of the test image.
type Container struct {
	c       *testcontainers.DockerContainer
	host    string       // the host its ports are published on, read once at start
	port    network.Port // container port, 6379/tcp
	network *testcontainers.DockerNetwork
	alias   string

	// tc serializes the calls that go through testcontainers: each one closes the container's
	// Docker client when it returns, which would break another one's request in flight.
	tc sync.Mutex
}

// ID returns the Docker container ID.
func (c *Container) ID() string { return c.c.GetContainerID() }

// Alias is the host name of the container on its Docker network ("" when it has none).
func (c *Container) Alias() string { return c.alias }

// Addr returns the host:port the service is reachable on from the test process right now.
//
// It asks the engine through this package's own client, never through testcontainers: every
// testcontainers container method closes the container's Docker client when it returns, which
// breaks a request another goroutine has in flight on it ("connection broken: CloseIdleConnections
// called"). Clients dial through Addr from their own goroutines, so a Start or Stop racing a
// redial failed that way.
func (c *Container) Addr(ctx context.Context) (string, error) {
	res, err := docker.ContainerInspect(ctx, c.ID(), client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("testenv: inspect %s: %w", c.alias, err)
	}
	var bindings []network.PortBinding
	if ns := res.Container.NetworkSettings; ns != nil {
		bindings = ns.Ports[c.port]
	}
	for _, b := range bindings {
		if b.HostPort != "" {
			return net.JoinHostPort(c.host, b.HostPort), nil
		}
	}
	return "", fmt.Errorf("testenv: %s has no host port for %s (is it running?)", c.alias, c.port)
}

// MustAddr is Addr that fails t on error.
func (c *Container) MustAddr(t testing.TB) string {
	t.Helper()
	a, err := c.Addr(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dial connects to the container's current address; clients made by this package use it so that
// they follow the container across Stop and Start.
func (c *Container) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	addr, err := c.Addr(ctx)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// Stop stops the container (SIGINT, then SIGKILL after 10 s); its file system survives for Start.
func (c *Container) Stop(t testing.TB) {
	t.Helper()
	timeout := 10 * time.Second
	c.tc.Lock()
	defer c.tc.Unlock()
	if err := c.c.Stop(context.Background(), &timeout); err != nil {
		t.Fatalf("testenv: stop %s: %v", c.alias, err)
	}
}

// Start starts a stopped container and waits until its service is ready. The mapped port changes.
func (c *Container) Start(t testing.TB) {
	t.Helper()
	c.tc.Lock()
	defer c.tc.Unlock()
	if err := c.c.Start(context.Background()); err != nil {
		t.Fatalf("testenv: start %s: %v", c.alias, err)
	}
}

// Pause freezes every process of the container: connections stay open but nothing answers.
func (c *Container) Pause(t testing.TB) {
	t.Helper()
	if _, err := docker.ContainerPause(context.Background(), c.ID(), client.ContainerPauseOptions{}); err != nil {
		t.Fatalf("testenv: pause %s: %v", c.alias, err)
	}
}

// Unpause resumes a paused container.
func (c *Container) Unpause(t testing.TB) {
	t.Helper()
	if _, err := docker.ContainerUnpause(context.Background(), c.ID(), client.ContainerUnpauseOptions{}); err != nil {
		t.Fatalf("testenv: unpause %s: %v", c.alias, err)
	}
}

// Disconnect takes the container off its Docker network: other containers cannot reach it.
func (c *Container) Disconnect(t testing.TB) {
	t.Helper()
	if c.network == nil {
		t.Fatalf("testenv: %s is on no network of its own", c.alias)
	}
	if _, err := docker.NetworkDisconnect(context.Background(), c.network.ID, client.NetworkDisconnectOptions{Container: c.ID(), Force: true}); err != nil {
		t.Fatalf("testenv: disconnect %s: %v", c.alias, err)
	}
}

// Connect puts a disconnected container back on its network under its alias.
func (c *Container) Connect(t testing.TB) {
	t.Helper()
	if c.network == nil {
		t.Fatalf("testenv: %s is on no network of its own", c.alias)
	}
	opts := client.NetworkConnectOptions{Container: c.ID()}
	opts.EndpointConfig = endpointWithAlias(c.alias)
	if _, err := docker.NetworkConnect(context.Background(), c.network.ID, opts); err != nil {
		t.Fatalf("testenv: connect %s: %v", c.alias, err)
	}
}

// Exec runs cmd in the container and returns its combined output; a non-zero exit fails t.
func (c *Container) Exec(t testing.TB, cmd ...string) string {
	t.Helper()
	out, err := c.TryExec(context.Background(), cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryExec is Exec that returns an error instead of failing the test.
func (c *Container) TryExec(ctx context.Context, cmd ...string) (string, error) {
	c.tc.Lock()
	defer c.tc.Unlock()
	code, r, err := c.c.Exec(ctx, cmd)
	if err != nil {
		return "", fmt.Errorf("testenv: exec %q in %s: %w", cmd, c.alias, err)
	}
	var b strings.Builder
	if r != nil {
		buf := make([]byte, 4096)
		for {
			n, rerr := r.Read(buf)
			b.Write(buf[:n])
			if rerr != nil {
				break
			}
		}
	}
	out := stripStreamHeaders(b.String())
	if code != 0 {
		return out, fmt.Errorf("testenv: exec %q in %s: exit %d: %s", cmd, c.alias, code, out)
	}
	return out, nil
}

// stripStreamHeaders removes Docker's 8-byte multiplexing headers from exec output.
func stripStreamHeaders(s string) string {
	var b strings.Builder
	for len(s) >= 8 && (s[0] == 1 || s[0] == 2) && s[1] == 0 && s[2] == 0 && s[3] == 0 {
		n := int(s[4])<<24 | int(s[5])<<16 | int(s[6])<<8 | int(s[7])
		s = s[8:]
		if n > len(s) {
			n = len(s)
		}
		b.WriteString(s[:n])
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

// run starts one container of the test image with cmd and cleans it up with t.
func run(t testing.TB, cmd []string, port string, nw *testcontainers.DockerNetwork, alias string, env map[string]string, waitFor ...testcontainers.CustomizeRequestOption) *Container {
	t.Helper()
	Require(t)
	p, err := network.ParsePort(port)
	if err != nil {
		t.Fatalf("testenv: port %q: %v", port, err)
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithCmd(cmd...),
		testcontainers.WithExposedPorts(port),
		testcontainers.WithEnv(env),
		withStopSignal(),
	}
	if nw != nil {
		opts = append(opts, withNetwork(nw, alias))
	}
	for _, w := range waitFor {
		opts = append(opts, w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := testcontainers.Run(ctx, Image(), opts...)
	testcontainers.CleanupContainer(t, c)
	if err != nil {
		t.Fatalf("testenv: start %s (%v): %v", alias, cmd, err)
	}
	host, err := c.Host(ctx)
	if err != nil {
		t.Fatalf("testenv: host of %s: %v", alias, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	return &Container{c: c, host: host, port: p, network: nw, alias: alias}
}

// newNetwork creates a Docker network removed by t.Cleanup.
func newNetwork(t testing.TB) *testcontainers.DockerNetwork {
	t.Helper()
	Require(t)
	nw, err := newDockerNetwork(context.Background())
	if nw != nil {
		testcontainers.CleanupNetwork(t, nw)
	}
	if err != nil {
		t.Fatalf("testenv: create network: %v", err)
	}
	return nw
}
