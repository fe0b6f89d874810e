//go:build unix

package tuf

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHandlerRefusesLinks plants symbolic links to the online timestamp
// key where a writer of metadata/ or targets/ (not keys/) can: the handler
// must not serve the private key, whatever the link's name.
func TestHandlerRefusesLinks(t *testing.T) {
	f := newFixture(t)
	keys, _ := filepath.Glob(filepath.Join(f.online, "timestamp-*.key"))
	if len(keys) != 1 {
		t.Fatalf("online timestamp keys: %q", keys)
	}
	secret, err := os.ReadFile(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		metadataDir + "/999.targets.json",
		targetsDir + "/sumdb/" + strings.Repeat("0", 64) + ".x.vkey",
	} {
		for _, target := range []string{keys[0], "rel"} {
			link := filepath.Join(f.dir, filepath.FromSlash(p))
			os.Remove(link)
			if target == "rel" {
				target, _ = filepath.Rel(filepath.Dir(link), keys[0])
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(f.url + "/" + p)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 || bytes.Contains(body, secret) || bytes.Contains(body, []byte("PRIVATE KEY")) {
				t.Errorf("GET /tuf/%s, a link to %s: %s\n%s", p, target, resp.Status, body)
			}
		}
	}
	// A link to a public file of the repository is refused as well: it
	// would serve one role's metadata under another's name.
	link := filepath.Join(f.dir, metadataDir, "2.root.json")
	if err := os.Symlink("1.root.json", link); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(f.url + "/metadata/2.root.json"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode == 200 {
		t.Errorf("GET /tuf/metadata/2.root.json, a link to 1.root.json: %s", resp.Status)
	}
}

// TestFIFONeverBlocks plants a FIFO where the readers of the repository
// look (metadata/7.targets.json, timestamp.json): re-signing, the status
// and the handler must report it, not wait for a writer that never comes.
// (The FIFO is opened for writing only if a reader blocked, to end the
// test; a correct reader never opens it.)
func TestFIFONeverBlocks(t *testing.T) {
	f := newFixture(t)
	fifo := filepath.Join(f.dir, metadataDir, "7.targets.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	within(t, fifo, "SignOnline", func() error { _, err := f.repo.SignOnline([]string{f.online}, f.clock.Now()); return err })
	within(t, fifo, "Status", func() error {
		st, err := f.repo.Status()
		if err == nil {
			wantProblem(t, st, "7.targets.json")
		}
		return err
	})
	within(t, fifo, "GET", func() error {
		resp, err := http.Get(f.url + "/metadata/7.targets.json")
		if err == nil && resp.StatusCode == 200 {
			t.Errorf("GET a FIFO: %s", resp.Status)
		}
		if err == nil {
			resp.Body.Close()
		}
		return nil
	})

	// The timestamp replaced by a FIFO: reported.
	os.Remove(fifo)
	ts := filepath.Join(f.dir, metadataDir, timestampFile)
	os.Remove(ts)
	if err := syscall.Mkfifo(ts, 0o644); err != nil {
		t.Fatal(err)
	}
	within(t, ts, "Status", func() error { _, err := f.repo.Status(); return err })
}

// within runs op, failing the test if it is still blocked after a
// generous 20 seconds (a reader waiting on the FIFO): a correct reader
// returns at once, so the bound never decides a passing run.
func within(t *testing.T, fifo, what string, op func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s with a FIFO planted: %v", what, err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("%s is blocked on the FIFO %s", what, fifo)
		// Unblock the reader, as often as it opens the FIFO again, so
		// that the test ends.
		for {
			if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}
