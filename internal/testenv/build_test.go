package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestBuildsMissingImageOnce runs two copies of this test binary at once, each with GIRDER_TEST_IMAGE
// naming a tag the engine lacks and CI=true (so neither may skip), and checks that the image gets
// built, by exactly one of them, which says so in one line, and that both then run their Redis test.
//
// It builds an image (about a minute offline on an idle machine, much longer on a busy one), so it
// runs only when GIRDER_TESTENV_BUILD=1; give it time: go test -timeout 30m.
func TestBuildsMissingImageOnce(t *testing.T) {
	if os.Getenv("GIRDER_TESTENV_BUILD") != "1" {
		t.Skip("set GIRDER_TESTENV_BUILD=1 to build a test image under a scratch tag (about a minute)")
	}
	if os.Getenv("GIRDER_TESTENV_CHILD") != "" {
		t.Skip("child run")
	}
	ctx := context.Background()
	c, err := findEngine(ctx, osEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	image := fmt.Sprintf("girder-testenv:buildtest-%d", os.Getpid())
	t.Cleanup(func() {
		_, _ = c.ImageRemove(context.Background(), image, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	if ok, err := (engineOps{c: c}).exists(ctx, image); err != nil || ok {
		t.Fatalf("scratch image %s: exists=%v err=%v, want missing", image, ok, err)
	}

	outs := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range outs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestRedisAnswers$", "-test.v", "-test.count=1", "-test.timeout=25m")
			cmd.Env = append(os.Environ(), "GIRDER_TEST_IMAGE="+image, "CI=true", "GIRDER_TESTENV_CHILD=1")
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	t.Logf("both runs done in %s", time.Since(start).Round(time.Second))
	builders := 0
	for i, out := range outs {
		if errs[i] != nil || !strings.Contains(out, "--- PASS: TestRedisAnswers") {
			t.Errorf("run %d: %v\n%s", i, errs[i], out)
		}
		builders += strings.Count(out, "testenv: test image "+image+" is missing")
	}
	if builders != 1 {
		t.Errorf("%d runs said they built the image, want exactly 1:\n%s\n%s", builders, outs[0], outs[1])
	}
}
