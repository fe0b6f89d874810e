package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestCorruptRecordServes500: a record changed in the database behind the
// log's back is answered 500 on /lookup and its data tile, never served;
// the other records still are. The 500's text is sumdbclient.DamagedText,
// not "internal error", so that an auditor tells damage from an outage.
func TestCorruptRecordServes500(t *testing.T) {
	f := newCorruptLog(t, 20)
	tampered := f.recs[10]
	tampered.Hash = "h1:" + strings.Repeat("B", 43) + "="
	f.store.SetRecord(10, tampered.Text())

	get := f.server(t)
	for _, path := range []string{"/lookup/example.com/m@v1.0.10", "/tile/8/data/000.p/20"} {
		code, body := get(path)
		if code != http.StatusInternalServerError || body != sumdbclient.DamagedText+"\n" {
			t.Errorf("GET %s = %d %q; want 500 %q", path, code, body, sumdbclient.DamagedText)
		}
	}
	if code, body := get("/lookup/example.com/m@v1.0.11"); code != http.StatusOK || !strings.Contains(body, "v1.0.11 "+f.hash) {
		t.Errorf("GET /lookup of record 11 = %d %q; want it served", code, body)
	}
}

// TestWrongIndexServes500: an index entry naming another version's record
// (a damaged or edited database; the record itself sound) made /lookup
// serve that record for the version asked. It is answered 500
// (sumdbclient.DamagedText), without the other record; the versions
// indexed right still are. Each is counted in
// sumd_log_corrupt_records_total, as the log counts those it meets on Add
// and Check.
func TestWrongIndexServes500(t *testing.T) {
	f := newCorruptLog(t, 20)
	f.store.SetIndex("example.com/other@v1.0.0", 10)
	f.store.SetIndex("example.com/m@v1.0.12", 10)

	get := f.server(t)
	for _, path := range []string{"/lookup/example.com/other@v1.0.0", "/lookup/example.com/m@v1.0.12"} {
		if code, body := get(path); code != http.StatusInternalServerError || body != sumdbclient.DamagedText+"\n" {
			t.Errorf("GET %s = %d %q; want 500 %q, without record 10", path, code, body, sumdbclient.DamagedText)
		}
	}
	if code, body := get("/lookup/example.com/m@v1.0.10"); code != http.StatusOK || !strings.Contains(body, "v1.0.10 "+f.hash) {
		t.Errorf("GET /lookup of record 10 = %d %q; want it served", code, body)
	}
	if got := counterValue(t, f.reg, "sumd_log_corrupt_records_total"); got != 2 {
		t.Errorf("sumd_log_corrupt_records_total = %v after two wrong index entries, want 2", got)
	}
}

// TestDamagedTileServes500: a hash tile changed in the database (one bit)
// is answered 500 with sumdbclient.DamagedText, as a damaged record is,
// at every width, and so is the data tile whose leaves it holds; it is
// counted. Tiles it does not hash through are still served.
func TestDamagedTileServes500(t *testing.T) {
	f := newCorruptLog(t, 600)
	tiles, err := f.store.ReadTiles(context.Background(), []tlog.TileID{{L: 0, N: 0}})
	if err != nil {
		t.Fatal(err)
	}
	tiles[0][3*32] ^= 1 // record 3's leaf
	f.store.SetTile(tlog.TileID{L: 0, N: 0}, tiles[0])

	get := f.server(t)
	for _, path := range []string{"/tile/8/0/000", "/tile/8/0/000.p/2", "/tile/8/data/000", "/tile/8/0/000"} {
		if code, body := get(path); code != http.StatusInternalServerError || body != sumdbclient.DamagedText+"\n" {
			t.Errorf("GET %s = %d %.80q; want 500 %q", path, code, body, sumdbclient.DamagedText)
		}
	}
	for _, path := range []string{"/tile/8/0/001", "/tile/8/0/002.p/88", "/tile/8/1/000.p/2", "/tile/8/data/001"} {
		if code, body := get(path); code != http.StatusOK {
			t.Errorf("GET %s = %d %.80q; want it served", path, code, body)
		}
	}
	if got := counterValue(t, f.reg, "sumd_log_corrupt_records_total"); got < 3 {
		t.Errorf("sumd_log_corrupt_records_total = %v after three reads of a damaged tile, want at least 3", got)
	}
}

// A corruptLog is a log of records example.com/m@v1.0.<i> in a memory
// store, for tests to damage behind its back.
type corruptLog struct {
	log   *tlog.Log
	store *tlog.MemStore
	reg   *prometheus.Registry
	key   *tlog.Key
	recs  []gosum.Record
	hash  string // every record's two hashes
}

func newCorruptLog(t *testing.T, n int) *corruptLog {
	t.Helper()
	skey, _, err := tlog.GenerateKey("corrupt.example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	f := &corruptLog{store: tlog.NewMemStore(), reg: prometheus.NewRegistry(), key: k, hash: "h1:" + strings.Repeat("A", 43) + "="}
	f.log, err = tlog.OpenStore(f.store, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quietLogger, Metrics: tlog.NewMetrics(f.reg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	f.recs = make([]gosum.Record, n)
	for i := range f.recs {
		f.recs[i] = gosum.Record{Path: "example.com/m", Version: "v1.0." + strconv.Itoa(i), Hash: f.hash, GoMod: f.hash}
	}
	if _, err := f.log.Add(context.Background(), f.recs...); err != nil {
		t.Fatal(err)
	}
	return f
}

// server serves the log and returns a GET of a path on it: the status and
// body.
func (f *corruptLog) server(t *testing.T) func(path string) (int, string) {
	srv := httptest.NewServer(New(f.key.Name(), f.log, Options{Logger: quietLogger}))
	t.Cleanup(srv.Close)
	return func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
}

// counterValue is the value of the counter called name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s is not registered", name)
	return 0
}

// TestIsRecordOf: a record is a version's only if its first line names
// that path and version whole, not a prefix of either.
func TestIsRecordOf(t *testing.T) {
	text := []byte("example.com/m v1.0.1 h1:x=\nexample.com/m v1.0.1/go.mod h1:y=\n")
	for _, tt := range []struct {
		path, version string
		want          bool
	}{
		{"example.com/m", "v1.0.1", true},
		{"example.com/m", "v1.0.10", false},
		{"example.com/m", "v1.0.", false},
		{"example.com/", "v1.0.1", false},
		{"example.com/mm", "v1.0.1", false},
		{"example.com/m v1.0.1", "h1:x=", false},
	} {
		if got := isRecordOf(text, module.Version{Path: tt.path, Version: tt.version}); got != tt.want {
			t.Errorf("isRecordOf(%s@%s) = %v, want %v", tt.path, tt.version, got, tt.want)
		}
	}
	// A mirror indexes an origin's record by its first line's first two
	// fields, whatever blanks separate them: such a record is its version's.
	if !isRecordOf([]byte("example.com/m\tv1.0.1  h1:x=\n"), module.Version{Path: "example.com/m", Version: "v1.0.1"}) {
		t.Error("a record separating its fields by a tab and two spaces is not its version's")
	}
}
