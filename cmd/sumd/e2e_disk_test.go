package main

import (
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestGoCommandDiskFull fills the real disk under a running sumd, whose
// -min-free-disk is set just below the space free at the start: a first
// lookup through the go command then fails with a 503 that says why (and
// names no path), as does an admin add; the server stays up, /healthz says
// degraded, versions recorded before still verify, and the log is
// untouched. Once the space is freed, the same lookup records the version.
// Without the floor, bbolt's failed write would stop the log and the
// server (an ambiguous failure), at every first lookup after a restart.
func TestGoCommandDiskFull(t *testing.T) {
	dir := t.TempDir()
	free, ok := tlog.FreeSpace(filepath.Join(dir, "x"))
	var err error
	if !ok || free < 4<<30 {
		err = errors.New("the file system of the test directory reports less than 4 GiB free")
	}
	testenv.Need(t, "4 GiB of free disk space", err)

	proxyURL, err := testproxy.Build(filepath.Join(dir, "proxy"), special[:2])
	if err != nil {
		t.Fatal(err)
	}
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	// The floor: 1 GiB under the space free now, so that other tests'
	// files (and a cold build cache: a test building cosign writes hundreds
	// of MiB) may take that much before the disk has room again, at the
	// end. The ballast then takes the disk 128 MiB under the floor, and
	// grows if other tests' files went away meanwhile.
	floorMiB := free>>20 - 1024
	s := startServer(t, "-create", "-db", filepath.Join(dir, "data", "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-upstream", proxyURL, "-admin-token-file", token, "-min-free-disk", strconv.FormatInt(floorMiB, 10))
	goGet := func(m testproxy.Module) (string, error) {
		g := testproxy.NewGo(t)
		g.Env = append(g.Env, "GOPROXY="+proxyURL, "GOSUMDB="+s.gosumdb, "GOFLAGS=-mod=mod")
		out, err := g.Run("mod", "download", m.Path+"@"+m.Version)
		return string(out), err
	}
	if out, err := goGet(special[0]); err != nil {
		t.Fatalf("go mod download with room on the disk: %v\n%s", err, out)
	}

	ballast := filepath.Join(dir, "ballast")
	for size := int64(1280 << 20); ; size += 256 << 20 {
		fill(t, ballast, size)
		if n, _ := tlog.FreeSpace(ballast); n < (floorMiB-128)<<20 {
			break
		}
		if size >= 3<<30 {
			t.Fatalf("the disk still has room above the floor with a ballast of %d MiB: does the file system compress or deduplicate?", size>>20)
		}
	}
	out, err := goGet(special[1])
	if err == nil || !strings.Contains(out, "503 Service Unavailable") || !strings.Contains(out, "disk is nearly full") {
		t.Fatalf("go mod download of a new version on a full disk: %v\n%s\nwant a 503 saying the disk is nearly full", err, out)
	}
	if strings.Contains(out, dir) {
		t.Errorf("the go command's error names a path of the server:\n%s", out)
	}
	_, errOut, err := sumdRun(t, "add", "-server", s.url, "-token-file", token, "-gosum",
		writeFile(t, filepath.Join(dir, "go.sum"), goSumFile(t, filepath.Join(dir, "proxy"), special[1:2])))
	if err == nil || !strings.Contains(errOut, "503") || !strings.Contains(errOut, "disk is nearly full") {
		t.Errorf("sumd add -server on a full disk: %v\n%s\nwant a 503 saying the disk is nearly full", err, errOut)
	}
	if r := getStatus(t, s.url+"/healthz"); r.status != http.StatusOK || !strings.Contains(r.body, "degraded") || !strings.Contains(r.body, "min-free-disk") || strings.Contains(r.body, dir) {
		t.Errorf("/healthz on a full disk: %d %q, want 200 degraded, naming min-free-disk and no path", r.status, r.body)
	}
	if out, err := goGet(special[0]); err != nil {
		t.Errorf("go mod download of a recorded version on a full disk: %v\n%s", err, out)
	}
	if head := get(t, s.url+"/latest"); !strings.HasPrefix(head, "go.sum database tree\n1\n") {
		t.Errorf("tree head on a full disk: %q, want the one record of before", head)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if out, err := goGet(special[1]); err != nil {
		t.Fatalf("go mod download once the disk has room again: %v\n%s", err, out)
	}
	if r := getStatus(t, s.url+"/healthz"); r.status != http.StatusOK || strings.Contains(r.body, "degraded") {
		t.Errorf("/healthz once the disk has room: %d %q, want ok", r.status, r.body)
	}
	if head := get(t, s.url+"/latest"); !strings.HasPrefix(head, "go.sum database tree\n2\n") {
		t.Errorf("tree head after the disk has room: %q, want 2 records", head)
	}
	logs := s.stderr.String()
	if !strings.Contains(logs, "below min-free-disk") || !strings.Contains(logs, "has room again") || !strings.Contains(logs, filepath.Join(dir, "data")) {
		t.Errorf("the server log lacks the crossing of the floor, either way, with the path:\n%s", logs)
	}
	if s.cmd.ProcessState != nil {
		t.Fatalf("sumd serve exited: %v", s.cmd.ProcessState)
	}
}

// fill makes name a file of n bytes that take n bytes of disk: random
// ones (zeros would take nothing on a compressing file system), a MiB
// repeated (no file system here deduplicates within a file), synced.
func fill(t *testing.T, name string, n int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Cleanup(func() { os.Remove(name) })
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	for i := int64(0); i < n; i += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}
