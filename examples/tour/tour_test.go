package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestTour runs every chapter and checks each printed its heading and did not fail.
func TestTour(t *testing.T) {
	var out bytes.Buffer
	if err := runTour(context.Background(), &out, nil); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for name := range chapters {
		if !strings.Contains(out.String(), "== "+name+":") {
			t.Errorf("chapter %s printed no heading", name)
		}
	}
}

func TestTourRejectsUnknownChapter(t *testing.T) {
	var out bytes.Buffer
	if err := runTour(context.Background(), &out, []string{"nope"}); err == nil {
		t.Fatal("want an error for an unknown chapter")
	}
}

// TestMain runs the tour's main instead of the tests when GIRDER_TOUR_MAIN=1, so that a test can
// run the command as a user does and read both of its streams.
func TestMain(m *testing.M) {
	if os.Getenv("GIRDER_TOUR_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTourPrintsNoStrayLines runs the whole tour as a process and checks that it writes nothing to
// stderr and that every stdout line is the tour's own: no library's log line (go-redis printed
// "redis: <date> pool.go:...: failed to dial" for each dial to the stopped Redis of the ratelimit
// chapter).
func TestTourPrintsNoStrayLines(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole tour in a process")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "GIRDER_TOUR_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tour: %v\nstderr:\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("tour wrote to stderr:\n%s", stderr.String())
	}
	logLine := regexp.MustCompile(`^(\w+: )?\d{4}/\d\d/\d\d \d\d:\d\d:\d\d`)
	for line := range strings.Lines(stdout.String()) {
		if logLine.MatchString(line) {
			t.Errorf("stray log line on stdout: %q", line)
		}
	}
	if !strings.Contains(stdout.String(), "chapters, all ran.") {
		t.Errorf("tour did not finish:\n%s", stdout.String())
	}
}
