package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testnet"
	itlog "github.com/sumd-project/sumd/internal/tlog"
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
	cmd.Env = childEnv(t)
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
	cmd := sumdCommand(t, "add", "-server", srv.URL, "-token-file", token, "-gosum", file)
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

// TestCommitConflictHint: a version another writer recorded with other
// hashes after the survey stops the commit; the error says to remove or
// fix its lines before running again, since a rerun's survey refuses on
// it (it promised that running again adds the rest). Other failures keep
// that promise.
func TestCommitConflictHint(t *testing.T) {
	r := verifyRecord("conflict", 1)
	local := &gosumSink{explain: func(err error) error { return err }}
	remote := &gosumSink{explain: remoteError}
	for name, c := range map[string]struct {
		sink *gosumSink
		err  error
	}{
		"log":         {local, &itlog.ConflictError{ID: 7, Recorded: r, Proposed: r}},
		"admin API":   {remote, &admin.Error{Status: http.StatusConflict, Message: "1 module version(s) are recorded with other hashes; nothing was added"}},
		"first chunk": {local, &itlog.ConflictError{ID: 7, Recorded: r, Proposed: r}},
	} {
		added := int64(5)
		if name == "first chunk" {
			added = 0
		}
		var ce *cliError
		err := c.sink.commitFailed(c.err, added)
		if !errors.As(err, &ce) || strings.Contains(err.Error(), "adds the rest") ||
			!strings.Contains(ce.hint, "remove or fix") || !strings.Contains(ce.hint, "run the same command again") {
			t.Errorf("%s: a conflict after %d records: %v (hint %+v); want a hint to remove or fix the lines, then run again", name, added, err, ce)
		}
		if added > 0 && !strings.Contains(err.Error(), "5 records were added") {
			t.Errorf("%s: %v does not say what was added", name, err)
		}
	}
	err := local.commitFailed(errors.New("disk full"), 5)
	if !strings.Contains(err.Error(), "5 records were added before this failure; once its cause is mended, running the same command again adds the rest") {
		t.Errorf("another failure: %v, want it to say running again adds the rest", err)
	}
}

// TestAddGoSumOneLine: sumd add -gosum checks a version with one go.sum
// line against the log, in the database file and through -server: a line
// the log holds with another hash stops the run naming both hashes, and
// one it holds with the same hash is reported as recorded, not as missing
// (nor is a go.sum of such lines "no complete module versions").
func TestAddGoSumOneLine(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "keys", e2eName+".key")
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	rec, other, next := verifyRecord("oneline", 1), verifyRecord("other", 1), verifyRecord("oneline", 2)
	sumd(t, "add", "-create", "-db", db, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "rec.sum"), rec.Text()))
	modLine := func(r gosum.Record) string { return r.Path + " " + r.Version + "/go.mod " + r.GoMod + "\n" }
	same := writeFile(t, filepath.Join(dir, "same.sum"), []byte(modLine(rec)))
	// The log's version with another go.mod hash, and a new complete one.
	changed := rec
	changed.GoMod = other.GoMod
	conflicting := writeFile(t, filepath.Join(dir, "conflict.sum"), append([]byte(modLine(changed)), next.Text()...))

	check := func(where string, args ...string) {
		t.Helper()
		out, errOut, err := sumdRun(t, append(append([]string{"add"}, args...), "-gosum", same)...)
		if err != nil || !strings.Contains(out, "1 with one line only, 1 of which recorded already with the same hash") ||
			strings.Contains(out, "not recorded") || strings.Contains(errOut, "has only") {
			t.Errorf("%s: a go.mod line the log holds with the same hash: %v\n%s%s\nwant exit 0, saying it is recorded", where, err, out, errOut)
		}
		out, errOut, err = sumdRun(t, append(append([]string{"add"}, args...), "-gosum", conflicting)...)
		want := rec.Key() + " is recorded as record 0 with go.mod " + rec.GoMod + "; the go.sum files say go.mod " + other.GoMod
		if statusOf(err) != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "nothing was added") {
			t.Errorf("%s: a go.mod line the log holds with another hash: %v\n%s%s\nwant exit 1 and %q", where, err, out, errOut, want)
		}
	}
	check("database file", "-db", db, "-key", key)
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	s := startServer(t, "-db", db, "-key", key, "-admin-token-file", token)
	check("-server", "-server", s.url, "-token-file", token)
	if out, _, _ := sumdRun(t, "add", "-server", s.url, "-token-file", token, "-gosum", writeFile(t, filepath.Join(dir, "next.sum"), next.Text())); !strings.Contains(out, "added 1 records") {
		t.Errorf("after the refused runs, the complete version was not new: %s", out)
	}
}

// TestAddGoSumDiscardKeepsOldLog: sumd add -create -gosum, refused, keeps
// a log that was there before it, even one holding no record yet: only a
// log the run created (tlog.Log.Created) is removed.
func TestAddGoSumDiscardKeepsOldLog(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "old.db"), filepath.Join(dir, "old.key")
	if _, err := writeKey("old.example", key, filepath.Join(dir, "old.vkey")); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Add{Database: config.Database{DB: db, Key: key}, Creating: config.Creating{Create: true}}
	// The first run creates the log and succeeds; the second is refused.
	for _, refused := range []bool{false, true} {
		sink, err := openLogSink(cfg, slog.New(slog.DiscardHandler), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if refused {
			sink.discard()
		}
		sink.close()
	}
	if !exists(db) {
		t.Errorf("a refused sumd add -create removed %s, the empty log that was there before it", db)
	}
}

// TestAddCreateRefusedLeavesNothing: sumd add -create -gosum, refused
// (a bad line, before the database is opened; -strict, after it created
// it), leaves nothing it made: not the database, not its scratch
// directory beside it, nor the directories it made for them. What was
// there before stays.
func TestAddCreateRefusedLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	rec := verifyRecord("refused", 1)
	bad := writeFile(t, filepath.Join(dir, "bad.sum"), []byte(rec.Path+" "+rec.Version+" h1:bad\n"))
	_, mod, _ := strings.Cut(string(rec.Text()), "\n")
	oneLine := writeFile(t, filepath.Join(dir, "one.sum"), []byte(mod))
	existing := filepath.Join(dir, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		db   string
		args []string
	}{
		{"bad line, new directories", filepath.Join(dir, "new", "dir", "sumd.db"), []string{"-gosum", bad}},
		{"-strict, new directories", filepath.Join(dir, "new", "dir", "sumd.db"), []string{"-strict", "-gosum", oneLine}},
		{"bad line, existing directory", filepath.Join(existing, "sumd.db"), []string{"-gosum", bad}},
		{"-strict, existing directory", filepath.Join(existing, "sumd.db"), []string{"-strict", "-gosum", oneLine}},
	} {
		out, errOut, err := sumdRun(t, append([]string{"add", "-create", "-db", tc.db, "-key", l.key}, tc.args...)...)
		if statusOf(err) != 1 || !strings.Contains(errOut, "nothing was added") {
			t.Fatalf("%s: %v\n%s%s\nwant it refused", tc.name, err, out, errOut)
		}
		for _, gone := range []string{filepath.Join(dir, "new"), tc.db, tc.db + ".tmp"} {
			if _, err := os.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: the refused sumd add -create left %s behind (%v)", tc.name, gone, err)
			}
		}
		if !exists(existing) {
			t.Fatalf("%s: the refused sumd add -create removed %s, which was there before it", tc.name, existing)
		}
	}
}

// TestAddGoSumChecksServerFirst: sumd add -server -gosum asks the server,
// with its credentials, before it sorts the files, so a wrong token or an
// unreachable server is said at once rather than after the sort (seconds
// for a million versions). A file the sort would refuse shows the order:
// the server's refusal must come first.
func TestAddGoSumChecksServerFirst(t *testing.T) {
	dir := t.TempDir()
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	sum := writeFile(t, filepath.Join(dir, "go.sum"), []byte("not a go.sum line\n"))
	// sumd serve's stack: the access layer checks the admin token.
	layer, err := access.New(access.Config{
		AdminTokenFile: writeSecret(t, filepath.Join(dir, "other.token"), "fedcba9876543210fedcba9876543210\n"), AdminAPI: true,
		Databases: []string{"sumd.test"}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	refusing := httptest.NewServer(layer.Wrap(admin.New(nil, admin.Options{Authenticated: true, Logger: slog.New(slog.DiscardHandler)})))
	defer refusing.Close()
	for server, want := range map[string]string{
		refusing.URL:                        "the credentials are missing or wrong",
		"http://" + testnet.RefusingAddr(t): "check -server",
	} {
		_, errOut, err := sumdRun(t, "add", "-server", server, "-token-file", token, "-gosum", sum)
		if statusOf(err) != 1 || !strings.Contains(errOut, want) || strings.Contains(errOut, "not a go.sum line") {
			t.Errorf("sumd add -server %s -gosum: exit %d\n%s\nwant exit 1 and the hint %q before the file is sorted", server, statusOf(err), errOut, want)
		}
	}
}
