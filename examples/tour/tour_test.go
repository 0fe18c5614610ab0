package main

import (
	"bytes"
	"context"
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
