package upstream

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestLookupLowDisk: with the log's disk under its floor, a first lookup
// fetches nothing from upstream (the download would only fill the disk
// further) and gets a 503 that says why and names no path.
func TestLookupLowDisk(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	p := newProxy(t, goodModule(m.Path, m.Version))
	skey, _, err := tlog.GenerateKey("sumd.test")
	if err != nil {
		t.Fatal(err)
	}
	k, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sumd.db")
	l, err := tlog.Open(path, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	// A floor above any disk: the real statfs says there is no room.
	l, err = tlog.Open(path, tlog.Options{Keys: []*tlog.Key{k}, Logger: quiet, MinFree: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := newRecorder(t, l, RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{})})
	_, err = rec.Lookup(context.Background(), m)
	var se *server.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || !errors.Is(err, tlog.ErrLowDisk) ||
		!strings.Contains(se.Error(), "disk is nearly full") || strings.Contains(se.Error(), filepath.Dir(path)) {
		t.Fatalf("first lookup on a full disk = %v, want a 503 saying the disk is nearly full, naming no path", err)
	}
	if n := p.count(".zip") + p.count(".mod") + p.count(".info"); n != 0 {
		t.Errorf("%d upstream requests on a full disk, want none", n)
	}
}
