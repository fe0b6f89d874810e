package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMECommandsMatchUsage checks that README.md's Commands block lists
// the commands exactly as sumd -h does, so that neither drifts from the
// other when a command or its synopsis changes.
func TestREADMECommandsMatchUsage(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i := strings.Index(readme, "\n## Commands\n")
	if i < 0 {
		t.Fatal("README.md has no Commands section")
	}
	block, ok := fencedBlock(readme[i:])
	if !ok {
		t.Fatal("README.md's Commands section has no ``` block")
	}
	_, after, _ := strings.Cut(usage, "Usage:\n")
	want, _, _ := strings.Cut(after, "\n\n")
	want = strings.ReplaceAll("\n"+want, "\n\t", "\n")[1:]
	if block != want {
		t.Errorf("README.md's Commands block differs from sumd -h:\n--- README\n%s\n--- sumd -h\n%s", block, want)
	}
}

// fencedBlock returns the body of the first ``` block of s, without its
// final newline.
func fencedBlock(s string) (string, bool) {
	_, rest, ok := strings.Cut(s, "\n```\n")
	if !ok {
		return "", false
	}
	body, _, ok := strings.Cut(rest, "\n```")
	return body, ok
}
