//go:build unix

package upstream

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestFileTreeFIFO: a FIFO where a file:// tree's .mod or zip should be is
// no such version (410), answered at once: opening one for reading would
// wait for a writer, a lookup hung for good.
func TestFileTreeFIFO(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	for name, path := range map[string]func(string) string{
		"mod": func(dir string) string { return testproxy.ModPath(dir, m) },
		"zip": func(dir string) string { return testproxy.ZipPath(dir, m) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tree")
			u, err := testproxy.Build(dir, []testproxy.Module{goodModule(m.Path, m.Version)})
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(path(dir))
			if err := unix.Mkfifo(path(dir), 0o644); err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: newFetcher(t, u, FetcherOptions{TempDir: t.TempDir()})})
			type answer struct {
				status int
				body   string
			}
			done := make(chan answer, 1)
			go func() {
				status, body := lookupHTTP(t, rec, m)
				done <- answer{status, body}
			}()
			select {
			case a := <-done:
				if want := "not found: example.com/m@v1.0.0: upstream proxy has no such version\n"; a.status != 410 || a.body != want {
					t.Errorf("lookup: %d %q, want 410 %q", a.status, a.body, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the lookup waited on the FIFO")
			}
		})
	}
}
