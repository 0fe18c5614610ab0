package testenv

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// candidate is one place a Docker engine may listen, and the rule that named it.
type candidate struct {
	host string // a Docker host URL: unix:///var/run/docker.sock, tcp://10.0.0.1:2375, ...
	from string // "DOCKER_HOST", `docker context "colima"`, ...
}

// sysEnv is what engineCandidates reads from the machine; tests replace it.
type sysEnv struct {
	getenv func(string) string
	home   string
	uid    int
	exists func(path string) bool
}

func osEnv() sysEnv {
	home, _ := os.UserHomeDir()
	return sysEnv{
		getenv: os.Getenv,
		home:   home,
		uid:    os.Getuid(),
		exists: func(p string) bool { _, err := os.Stat(p); return err == nil },
	}
}

// engineCandidates lists, in order, where to look for the Docker engine: testcontainers' order, with
// the Docker CLI's current context inserted after DOCKER_HOST (as the CLI ranks it), so that a machine
// whose docker command works runs the integration tests too.
//
//  1. tc.host in ~/.testcontainers.properties
//  2. DOCKER_HOST
//  3. the docker context: DOCKER_CONTEXT, else currentContext in $DOCKER_CONFIG/config.json
//     (~/.docker/config.json); its endpoint is in contexts/meta/<sha256 of the name>/meta.json
//  4. /var/run/docker.sock
//  5. docker.host in ~/.testcontainers.properties
//  6. rootless and Docker Desktop sockets: $XDG_RUNTIME_DIR/docker.sock, ~/.docker/run/docker.sock,
//     ~/.docker/desktop/docker.sock, /run/user/<uid>/docker.sock
//
// Sockets are listed only when the file exists. Problems reading the configuration (a context that
// names no endpoint) come back as errors for the skip message, without stopping the search.
func engineCandidates(e sysEnv) ([]candidate, []error) {
	var (
		out  []candidate
		errs []error
	)
	add := func(host, from string) {
		if host != "" {
			out = append(out, candidate{host: host, from: from})
		}
	}
	socket := func(path, from string) {
		if path != "" && e.exists(path) {
			add("unix://"+path, from)
		}
	}
	props := readProperties(filepath.Join(e.home, ".testcontainers.properties"))

	add(props["tc.host"], "tc.host in ~/.testcontainers.properties")
	add(e.getenv("DOCKER_HOST"), "DOCKER_HOST")
	host, name, err := contextHost(e)
	if err != nil {
		errs = append(errs, err)
	}
	add(host, fmt.Sprintf("docker context %q", name))
	if runtime.GOOS == "windows" {
		add("npipe:////./pipe/docker_engine", "the default named pipe")
	} else {
		socket("/var/run/docker.sock", "the default socket")
	}
	add(props["docker.host"], "docker.host in ~/.testcontainers.properties")
	if runtime.GOOS != "windows" {
		if d := e.getenv("XDG_RUNTIME_DIR"); d != "" {
			socket(filepath.Join(d, "docker.sock"), "XDG_RUNTIME_DIR (rootless Docker)")
		}
		if e.home != "" {
			socket(filepath.Join(e.home, ".docker", "run", "docker.sock"), "Docker Desktop's socket")
			socket(filepath.Join(e.home, ".docker", "desktop", "docker.sock"), "Docker Desktop's socket")
		}
		socket(filepath.Join("/run/user", strconv.Itoa(e.uid), "docker.sock"), "the rootless socket")
	}
	return dedupe(out), errs
}

func dedupe(cs []candidate) []candidate {
	seen := map[string]bool{}
	out := cs[:0]
	for _, c := range cs {
		if !seen[c.host] {
			seen[c.host] = true
			out = append(out, c)
		}
	}
	return out
}

// contextHost returns the Docker endpoint of the CLI's current context and the context's name; "" for
// the default context, which means the default socket.
func contextHost(e sysEnv) (host, name string, err error) {
	dir := e.getenv("DOCKER_CONFIG")
	if dir == "" {
		if e.home == "" {
			return "", "", nil
		}
		dir = filepath.Join(e.home, ".docker")
	}
	name = e.getenv("DOCKER_CONTEXT")
	if name == "" {
		b, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			return "", "", nil // no CLI configuration: no context
		}
		var cfg struct {
			CurrentContext string `json:"currentContext"`
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			return "", "", fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
		}
		name = cfg.CurrentContext
	}
	if name == "" || name == "default" {
		return "", name, nil
	}
	sum := sha256.Sum256([]byte(name))
	meta := filepath.Join(dir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
	b, err := os.ReadFile(meta)
	if err != nil {
		return "", name, fmt.Errorf("docker context %q: %w", name, err)
	}
	var m struct {
		Endpoints map[string]struct {
			Host string `json:"Host"`
		} `json:"Endpoints"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", name, fmt.Errorf("docker context %q: %s: %w", name, meta, err)
	}
	host = m.Endpoints["docker"].Host
	if host == "" {
		return "", name, fmt.Errorf("docker context %q names no docker endpoint (%s)", name, meta)
	}
	return host, name, nil
}

// readProperties reads the key=value lines of a Java-style properties file; a missing file is empty.
func readProperties(path string) map[string]string {
	props := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return props
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			k, v, ok = strings.Cut(line, ":")
		}
		if ok {
			props[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return props
}

// errNoEngine is the error when no candidate answered.
func errNoEngine(tried []string, errs []error) error {
	where := "found no DOCKER_HOST, docker context, or Docker socket"
	if len(tried) > 0 {
		where = "tried " + strings.Join(tried, "; ")
	}
	err := fmt.Errorf("no Docker engine answered (%s); start Docker, or set DOCKER_HOST to its address", where)
	if len(errs) > 0 {
		err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
	}
	return err
}
