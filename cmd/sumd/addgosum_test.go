package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAddGoSumFIFO: sumd add -gosum refuses a named pipe at once, naming
// it (it opened the pipe, holding the database's lock, and waited for ever
// for a writer, deaf to SIGINT and SIGTERM).
func TestAddGoSumFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "go.sum")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sumdBin, "add", "-create", "-db", filepath.Join(dir, "s.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"), "-gosum", fifo)
	out, err := cmd.CombinedOutput()
	if statusOf(err) != 1 || !strings.Contains(string(out), "sumd: error: "+fifo+" is a named pipe (FIFO), not a go.sum file") {
		t.Errorf("sumd add -gosum FIFO: %v\n%s\nwant exit 1 and an error naming the pipe", err, out)
	}
}

// TestAddGoSumInterrupted: SIGINT stops sumd add -gosum waiting on a
// server, which says it was interrupted and what was added, rather than
// "context canceled".
func TestAddGoSumInterrupted(t *testing.T) {
	dir := t.TempDir()
	asked, stop := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		select { // a server that never answers
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	file := writeFile(t, filepath.Join(dir, "go.sum"), verifyRecord("interrupted", 1).Text())
	var stderr bytes.Buffer
	cmd := exec.Command(sumdBin, "add", "-server", srv.URL, "-token-file", token, "-gosum", file)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("sumd add -server -gosum sent no request")
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if statusOf(err) != 1 || !strings.Contains(stderr.String(), "sumd: error: interrupted (SIGINT or SIGTERM): nothing was added\n") || strings.Contains(stderr.String(), "context canceled") {
			t.Errorf("sumd add -gosum after SIGINT: %v\n%s", err, &stderr)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("sumd add -gosum still runs 15s after SIGINT\n%s", &stderr)
	}
}
