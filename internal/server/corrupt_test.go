package server

import (
	"context"
	"io"
	"log/slog"
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
	skey, _, err := tlog.GenerateKey("corrupt.example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := tlog.NewMemStore()
	l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := "h1:" + strings.Repeat("A", 43) + "="
	recs := make([]gosum.Record, 20)
	for i := range recs {
		recs[i] = gosum.Record{Path: "example.com/m", Version: "v1.0." + strconv.Itoa(i), Hash: h, GoMod: h}
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	tampered := recs[10]
	tampered.Hash = "h1:" + strings.Repeat("B", 43) + "="
	s.SetRecord(10, tampered.Text())

	srv := httptest.NewServer(New(k.Name(), l, Options{Logger: quiet}))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/lookup/example.com/m@v1.0.10", "/tile/8/data/000.p/20"} {
		code, body := get(path)
		if code != http.StatusInternalServerError || body != sumdbclient.DamagedText+"\n" {
			t.Errorf("GET %s = %d %q; want 500 %q", path, code, body, sumdbclient.DamagedText)
		}
	}
	if code, body := get("/lookup/example.com/m@v1.0.11"); code != http.StatusOK || !strings.Contains(body, "v1.0.11 "+h) {
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
	skey, _, err := tlog.GenerateKey("corrupt.example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := tlog.NewMemStore()
	reg := prometheus.NewRegistry()
	l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet, Metrics: tlog.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := "h1:" + strings.Repeat("A", 43) + "="
	recs := make([]gosum.Record, 20)
	for i := range recs {
		recs[i] = gosum.Record{Path: "example.com/m", Version: "v1.0." + strconv.Itoa(i), Hash: h, GoMod: h}
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	s.SetIndex("example.com/other@v1.0.0", 10)
	s.SetIndex("example.com/m@v1.0.12", 10)

	srv := httptest.NewServer(New(k.Name(), l, Options{Logger: quiet}))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/lookup/example.com/other@v1.0.0", "/lookup/example.com/m@v1.0.12"} {
		if code, body := get(path); code != http.StatusInternalServerError || body != sumdbclient.DamagedText+"\n" {
			t.Errorf("GET %s = %d %q; want 500 %q, without record 10", path, code, body, sumdbclient.DamagedText)
		}
	}
	if code, body := get("/lookup/example.com/m@v1.0.10"); code != http.StatusOK || !strings.Contains(body, "v1.0.10 "+h) {
		t.Errorf("GET /lookup of record 10 = %d %q; want it served", code, body)
	}
	if got := counterValue(t, reg, "sumd_log_corrupt_records_total"); got != 2 {
		t.Errorf("sumd_log_corrupt_records_total = %v after two wrong index entries, want 2", got)
	}
}

// TestDamagedTileServes500: a hash tile changed in the database (one bit)
// is answered 500 with sumdbclient.DamagedText, as a damaged record is,
// at every width, and so is the data tile whose leaves it holds; it is
// counted. Tiles it does not hash through are still served.
func TestDamagedTileServes500(t *testing.T) {
	skey, _, err := tlog.GenerateKey("corrupt.example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := tlog.NewMemStore()
	reg := prometheus.NewRegistry()
	l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet, Metrics: tlog.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := "h1:" + strings.Repeat("A", 43) + "="
	recs := make([]gosum.Record, 600)
	for i := range recs {
		recs[i] = gosum.Record{Path: "example.com/m", Version: "v1.0." + strconv.Itoa(i), Hash: h, GoMod: h}
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	tiles, err := s.ReadTiles(context.Background(), []tlog.TileID{{L: 0, N: 0}})
	if err != nil {
		t.Fatal(err)
	}
	tiles[0][3*32] ^= 1 // record 3's leaf
	s.SetTile(tlog.TileID{L: 0, N: 0}, tiles[0])

	srv := httptest.NewServer(New(k.Name(), l, Options{Logger: quiet}))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
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
	if got := counterValue(t, reg, "sumd_log_corrupt_records_total"); got < 3 {
		t.Errorf("sumd_log_corrupt_records_total = %v after three reads of a damaged tile, want at least 3", got)
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
