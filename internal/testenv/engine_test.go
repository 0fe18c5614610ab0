package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// writeContext stores a docker context named name with endpoint host under dir, as `docker context
// create` does.
func writeContext(t *testing.T, dir, name, host string) {
	t.Helper()
	sum := sha256.Sum256([]byte(name))
	meta := filepath.Join(dir, "contexts", "meta", hex.EncodeToString(sum[:]))
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	body := `{"Name":"` + name + `","Metadata":{},"Endpoints":{"docker":{"Host":"` + host + `","SkipTLSVerify":false}}}`
	if err := os.WriteFile(filepath.Join(meta, "meta.json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEngineCandidates(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the socket rules are for unix")
	}
	type setup struct {
		env     map[string]string
		config  string            // ~/.docker/config.json
		ctxs    map[string]string // context name -> endpoint, under ~/.docker
		props   string            // ~/.testcontainers.properties
		sockets []string          // paths that exist; "~" is the home directory
	}
	tests := []struct {
		name    string
		setup   setup
		want    []string // hosts in order; "~" is the home directory
		wantErr string
	}{
		{name: "nothing", want: nil},
		{
			name:  "default socket",
			setup: setup{sockets: []string{"/var/run/docker.sock"}},
			want:  []string{"unix:///var/run/docker.sock"},
		},
		{
			name: "DOCKER_HOST first, then the context, then the default socket",
			setup: setup{
				env:     map[string]string{"DOCKER_HOST": "tcp://10.0.0.1:2375"},
				config:  `{"auths":{},"currentContext":"colima"}`,
				ctxs:    map[string]string{"colima": "unix://~/.colima/default/docker.sock"},
				sockets: []string{"/var/run/docker.sock"},
			},
			want: []string{"tcp://10.0.0.1:2375", "unix://~/.colima/default/docker.sock", "unix:///var/run/docker.sock"},
		},
		{
			name: "DOCKER_CONTEXT overrides currentContext",
			setup: setup{
				env:    map[string]string{"DOCKER_CONTEXT": "remote"},
				config: `{"currentContext":"colima"}`,
				ctxs:   map[string]string{"colima": "unix:///colima.sock", "remote": "ssh://me@build"},
			},
			want: []string{"ssh://me@build"},
		},
		{
			name:  "the default context adds nothing",
			setup: setup{config: `{"currentContext":"default"}`, sockets: []string{"/var/run/docker.sock"}},
			want:  []string{"unix:///var/run/docker.sock"},
		},
		{
			name:    "a context without metadata is reported and skipped",
			setup:   setup{config: `{"currentContext":"gone"}`, sockets: []string{"/var/run/docker.sock"}},
			want:    []string{"unix:///var/run/docker.sock"},
			wantErr: `docker context "gone"`,
		},
		{
			name: "Docker Desktop and rootless sockets come last, tc.host first",
			setup: setup{
				env:     map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
				props:   "tc.host=tcp://tc:2375\ndocker.host = unix:///props.sock\n",
				sockets: []string{"~/.docker/run/docker.sock", "/run/user/1000/docker.sock", "~/.docker/desktop/docker.sock"},
			},
			want: []string{"tcp://tc:2375", "unix:///props.sock", "unix:///run/user/1000/docker.sock", "unix://~/.docker/run/docker.sock", "unix://~/.docker/desktop/docker.sock"},
		},
		{
			name:  "the same socket is listed once",
			setup: setup{env: map[string]string{"DOCKER_HOST": "unix:///var/run/docker.sock"}, sockets: []string{"/var/run/docker.sock"}},
			want:  []string{"unix:///var/run/docker.sock"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			expand := func(s string) string { return strings.ReplaceAll(s, "~", home) }
			if tt.setup.config != "" {
				writeFile(t, filepath.Join(home, ".docker", "config.json"), tt.setup.config)
			}
			for name, host := range tt.setup.ctxs {
				writeContext(t, filepath.Join(home, ".docker"), name, expand(host))
			}
			if tt.setup.props != "" {
				writeFile(t, filepath.Join(home, ".testcontainers.properties"), tt.setup.props)
			}
			sockets := map[string]bool{}
			for _, s := range tt.setup.sockets {
				sockets[expand(s)] = true
			}
			e := sysEnv{
				getenv: func(k string) string { return tt.setup.env[k] },
				home:   home,
				uid:    1000,
				exists: func(p string) bool { return sockets[p] },
			}
			cands, errs := engineCandidates(e)
			var got []string
			for _, c := range cands {
				got = append(got, c.host)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, expand(w))
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("candidates:\n got %q\nwant %q", got, want)
			}
			var msgs []string
			for _, err := range errs {
				msgs = append(msgs, err.Error())
			}
			if all := strings.Join(msgs, "; "); tt.wantErr == "" && all != "" || !strings.Contains(all, tt.wantErr) {
				t.Errorf("errors %q, want one containing %q", all, tt.wantErr)
			}
		})
	}
}
