// Package testenv starts the real Redis and PostgreSQL servers that girder's integration tests run
// against, as containers of one image (girder-testenv:1, see image/), through testcontainers-go.
//
// It finds the Docker engine where testcontainers does (tc.host in ~/.testcontainers.properties,
// DOCKER_HOST, /var/run/docker.sock, the rootless and Docker Desktop sockets) and, like the docker
// command, through the current docker context. When the engine lacks the test image, the first test
// that needs it builds it, once for every test binary running on the machine (a file lock), and
// prints one line saying so: from image/Dockerfile where its base image can be pulled, else with the
// offline image/build.sh where this machine can run it (Linux, root). Without an engine, or when the
// image cannot be built, Require skips the test with one line naming the command that fixes it; when
// the environment variable CI is "true" it fails the test instead, so CI cannot pass by skipping.
//
// Every container and network is removed by t.Cleanup.
//
// Containers can be stopped and started again (the mapped host port changes: Addr, DSN, and the
// clients and pools made here always dial the current one), paused, and disconnected from their
// network, to inject faults.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// DefaultImage is the test image; GIRDER_TEST_IMAGE overrides it.
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
}

var (
	probeOnce sync.Once
	probeErr  error
	docker    *client.Client
)

// probe finds the Docker engine and makes sure it has the test image, once per process: when the
// image is missing it builds it (see ensureImage), printing one line saying so.
func probe() error {
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := findEngine(ctx, osEnv())
		cancel()
		if err != nil {
			probeErr = err
			return
		}
		useEngine(c.DaemonHost())
		dir, _ := imageDir() // without the sources, ensureImage says what it cannot do
		ctx, cancel = context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if err := ensureImage(ctx, engineOps{c: c, dir: dir}, Image(), func(line string) { fmt.Fprintln(os.Stderr, line) }); err != nil {
			probeErr = err
			return
		}
		docker = c
	})
	return probeErr
}

// findEngine returns a client of the first engine candidate that answers a ping.
func findEngine(ctx context.Context, e sysEnv) (*client.Client, error) {
	cands, errs := engineCandidates(e)
	var tried []string
	for _, cand := range cands {
		tried = append(tried, fmt.Sprintf("%s from %s", cand.host, cand.from))
		c, err := client.New(client.FromEnv, client.WithHost(cand.host))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cand.host, err))
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err != nil {
			c.Close()
			errs = append(errs, fmt.Errorf("%s: %w", cand.host, err))
			continue
		}
		return c, nil
	}
	return nil, errNoEngine(tried, errs)
}

// useEngine points testcontainers (and the docker command build.sh runs) at the engine probe found,
// which may have come from a docker context testcontainers does not read.
func useEngine(host string) {
	if os.Getenv("DOCKER_HOST") == "" {
		os.Setenv("DOCKER_HOST", host)
	}
	// A local engine (unix socket) publishes ports on this host. testcontainers would take the
	// default gateway instead whenever /.dockerenv exists, which is wrong on a machine that is
	// itself a container running its own engine.
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" && strings.HasPrefix(host, "unix://") {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
}

// Available reports whether integration tests can run here, and if not, why.
func Available() error { return probe() }

// Require skips t when there is no Docker engine or the test image is missing and cannot be built,
// or fails it when CI=true.
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
	var b bytes.Buffer
	if r != nil {
		if _, err := stdcopy.StdCopy(&b, &b, r); err != nil {
			return b.String(), fmt.Errorf("testenv: exec %q in %s: read output: %w", cmd, c.alias, err)
		}
	}
	out := b.String()
	if code != 0 {
		return out, fmt.Errorf("testenv: exec %q in %s: exit %d: %s", cmd, c.alias, code, out)
	}
	return out, nil
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
