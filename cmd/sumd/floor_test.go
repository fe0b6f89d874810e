package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
)

// TestFetcherFloors: a fetcher's zips spill onto a disk whose floor is
// -min-free-disk where they share it with a database (sumd add -gosum
// -upstream: <db>.tmp), and have no floor where there is no database to
// protect (sumd verify -recheck, in $TMPDIR); the fetcher's default, 64
// MiB, would refuse rechecks on a nearly full $TMPDIR and ignore
// -min-free-disk 0 or a higher floor.
func TestFetcherFloors(t *testing.T) {
	if got := recheckFetcherOptions(nil).MinFree; got >= 0 {
		t.Errorf("verify -recheck's fetcher floor = %d, want none (negative)", got)
	}
	for _, mib := range []int{0, 1024} {
		cfg := &config.Add{}
		cfg.Upstream = "https://proxy.example"
		cfg.MinFreeDisk = mib
		opts, err := gosumUpstream(cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if want := cfg.DiskFloor.Bytes(); opts.MinFree != want {
			t.Errorf("add -gosum -upstream -min-free-disk %d: fetcher floor %d, want %d", mib, opts.MinFree, want)
		}
	}
}

// TestBackupMinFreeDisk: sumd backup takes -min-free-disk, with serve's
// meaning: a copy, from a server or from a file, that would leave less
// free on the disk of -o writes nothing there and names the option; 0
// turns the floor off.
func TestBackupMinFreeDisk(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	l.add(t, "floor", 0, 1)
	body := make([]byte, 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	const floor = "536870912" // MiB: 512 TiB, more than any test machine has free
	out := filepath.Join(dir, "copy.db")
	for _, from := range [][]string{{"-server", srv.URL, "-token-file", token}, {"-db", l.db}} {
		args := append(append([]string{"backup"}, from...), "-min-free-disk", floor, "-o", out)
		_, errOut, err := sumdRun(t, args...)
		if statusOf(err) != 1 || !strings.Contains(errOut, "min-free-disk") || !strings.Contains(errOut, "hint: nothing was written to "+out) {
			t.Errorf("sumd %s: exit %d\n%s\nwant 1, refused for -min-free-disk", strings.Join(args, " "), statusOf(err), errOut)
		}
		if exists(out) {
			t.Fatalf("sumd %s wrote %s", strings.Join(args, " "), out)
		}
	}
	if got := sumd(t, "backup", "-db", l.db, "-min-free-disk", "0", "-o", out); !strings.Contains(got, "verified in full") {
		t.Errorf("sumd backup -min-free-disk 0 printed %q", got)
	}
}
