package upstream

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestSpillKeepsFloor: a zip streamed to the temporary directory stops,
// with the low-disk 503 the log's own refusal gives, before it takes the
// file system under the floor, however much was free when the fetch
// began: first lookups must never eat the space the log's commits need
// (a commit failing on a full disk stops the log). Nothing is recorded or
// remembered, and the partial file is removed.
func TestSpillKeepsFloor(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	p := newProxy(t, testproxy.WithNoise(goodModule(m.Path, m.Version), 8<<20))
	tmp := t.TempDir()
	f := newFetcher(t, p.url, FetcherOptions{TempDir: tmp, MinFree: 64 << 20})
	// Room for the floor and 3 MiB when the fetch starts; the disk then
	// fills by what the zip writes.
	start := int64(64<<20 + 3<<20)
	var asked []string
	f.freeSpace = func(path string) (int64, bool) {
		asked = append(asked, path)
		var written int64
		if es, _ := os.ReadDir(tmp); len(es) == 1 {
			if fi, err := es[0].Info(); err == nil {
				written = fi.Size()
			}
		}
		return start - written, true
	}
	rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f})
	_, err := rec.Lookup(context.Background(), m)
	var se *server.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || !errors.Is(err, tlog.ErrLowDisk) ||
		!strings.Contains(se.Error(), "disk for downloads is nearly full") || strings.Contains(se.Error(), tmp) {
		t.Fatalf("first lookup filling -tmp-dir = %v, want a 503 saying the disk for downloads is nearly full, naming no path", err)
	}
	// The database's disk may have room: /healthz names -tmp-dir.
	if ps := rec.Problems(); len(ps) != 1 || !strings.Contains(ps[0], "-tmp-dir") {
		t.Errorf("problems after a spill refused for space: %q, want one naming -tmp-dir", ps)
	}
	if len(asked) == 0 || !strings.HasPrefix(asked[0], tmp+string(filepath.Separator)) {
		t.Errorf("free space asked of %q, want of the file in %s", asked, tmp)
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Errorf("%d files left in the temporary directory", len(es))
	}
	if e := rec.neg.get(m); e != nil {
		t.Errorf("a full disk remembered as the version's failure: %v", e)
	}
	// With room, the same fetch succeeds.
	start = 1 << 40
	if _, err := rec.Lookup(context.Background(), m); err != nil {
		t.Fatalf("lookup with room: %v", err)
	}
}
