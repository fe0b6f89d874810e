package serve

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/gosum"
	sumdlog "github.com/sumd-project/sumd/internal/tlog"
)

// pageServer serves a log holding 505 versions of example.com/big, one of
// example.com/big/v2 and example.com/small, and example.com/Upper.
func pageServer(t testing.TB) string {
	t.Helper()
	cfg, urls, _ := testConfig(t)
	open := cfg.OpenLog
	cfg.OpenLog = func() (*sumdlog.Log, error) {
		l, err := open()
		if err != nil {
			return nil, err
		}
		var recs []gosum.Record
		h := "h1:" + strings.Repeat("A", 43) + "="
		for i := range versionsShown + 5 {
			recs = append(recs, gosum.Record{Path: "example.com/big", Version: fmt.Sprintf("v1.%d.0", i), Hash: h, GoMod: h})
		}
		for _, p := range []string{"example.com/big/v2@v2.0.0", "example.com/small@v0.1.0", "example.com/Upper@v1.0.0-rc.1"} {
			path, version, _ := strings.Cut(p, "@")
			recs = append(recs, gosum.Record{Path: path, Version: version, Hash: h, GoMod: h})
		}
		_, err = l.Add(context.Background(), recs...)
		return l, err
	}
	return serveTest(t, cfg, urls)
}

func TestPage(t *testing.T) {
	url := pageServer(t)
	for _, tc := range []struct {
		path  string
		code  int
		want  []string // substrings, in order
		avoid []string
	}{
		{"/", 200, []string{`class="badge ok"`, `id="tree-size">508<`, `<svg class="chart"`, `record?id=507">507<`, `module?path=example.com%2fUpper`, `record?id=488">488<`}, []string{`record?id=487"`, "<script"}},
		{"/module?path=example.com/small", 200, []string{`id="module-path" class="break">example.com/small<`, "record?id=506", "example.com/small v0.1.0 h1:", "example.com/small v0.1.0/go.mod h1:"}, nil},
		// Newest first, by semver, bounded, and saying so.
		{"/module?path=example.com/big", 200, []string{"500 recorded versions shown, the newest; there are more", ">v1.504.0<", ">v1.503.0<", ">v1.10.0<", ">v1.9.0<", ">v1.5.0<"}, []string{"example.com/big/v2", ">v1.4.0<"}},
		{"/module?path=example.com/", 200, []string{`id="modules"`, ">example.com/Upper<", ">example.com/big/v2<", ">example.com/big<", ">example.com/small<"}, nil},
		{"/module?path=example.org", 200, []string{`id="none"`}, nil},
		{"/module?path=%3Cscript%3Ealert(1)%3C/script%3E", 200, []string{`id="none"`, "&lt;script&gt;alert(1)&lt;/script&gt;"}, []string{"<script>"}},
		{"/module?path=" + strings.Repeat("a", 600), 400, []string{"longer than 512 bytes"}, nil},
		{"/record?id=507", 200, []string{`id="record-id">507<`, "example.com/Upper v1.0.0-rc.1 h1:", `href="lookup/example.com/!upper@v1.0.0-rc.1"`, `id="proof-status" class="ok"`, `href="tile/8/0/001.p/252"`, `href="tile/8/1/000.p/1"`}, nil},
		{"/record?id=508", 404, []string{"There is no record 508: the log holds 508."}, nil},
		{"/record?id=x", 400, []string{"A record id is a number"}, nil},
		{"/example.com/big/@v/list", 404, nil, nil},
	} {
		code, body := fetch(t, url+tc.path)
		if code != tc.code {
			t.Errorf("GET %s = %d, want %d\n%s", tc.path, code, tc.code, body)
			continue
		}
		rest := body
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("GET %s: no %q (in order) in\n%s", tc.path, w, body)
				break
			}
			rest = rest[i+len(w):]
		}
		for _, a := range tc.avoid {
			if strings.Contains(body, a) {
				t.Errorf("GET %s: unexpected %q", tc.path, a)
			}
		}
	}
}

// TestPageLinks follows every link of the record page that leads to the
// protocol: the lookup answers the same record, and the tiles exist.
func TestPageLinks(t *testing.T) {
	url := pageServer(t)
	_, body := fetch(t, url+"/record?id=3")
	links := regexp.MustCompile(`href="((?:lookup|tile)/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(links) < 2 {
		t.Fatalf("record page has %d protocol links", len(links))
	}
	for _, l := range links {
		code, b := fetch(t, url+"/"+l[1])
		if code != http.StatusOK {
			t.Errorf("GET %s = %d %s", l[1], code, b)
		}
		if strings.HasPrefix(l[1], "lookup/") && !strings.HasPrefix(b, "3\nexample.com/big v1.3.0 h1:") {
			t.Errorf("GET %s = %q, want record 3", l[1], b)
		}
	}
}

// TestPageSearchVersion: "path@version" goes straight to the record.
func TestPageSearchVersion(t *testing.T) {
	url := pageServer(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url + "/module?path=example.com/small@v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "record?id=506" {
		t.Errorf("search for a version = %d %q, want 302 to record?id=506", resp.StatusCode, loc)
	}
}

// TestPageGOSUMDBDuringRotation: during a key rotation the page's GOSUMDB
// names the oldest key, the one sumd serve prints and sumd tuf gosumdb
// gives (docs/keys.md: clients of the old key keep verifying), not the
// newest.
func TestPageGOSUMDBDuringRotation(t *testing.T) {
	cfg, _, _ := testConfig(t)
	var keys []*sumdlog.Key
	var vkeys []string
	for range 2 {
		skey, vkey, err := sumdlog.GenerateKey("serve.example.com")
		if err != nil {
			t.Fatal(err)
		}
		k, _ := sumdlog.ParseKey(skey)
		keys, vkeys = append(keys, k), append(vkeys, vkey)
	}
	cfg.OpenLog = func() (*sumdlog.Log, error) {
		return sumdlog.Open(cfg.DBFile, sumdlog.Options{Keys: keys, Create: true, Logger: cfg.Logger})
	}
	printed := make(chan string, 1)
	urls := make(chan string, 1)
	cfg.Ready = func(l *sumdlog.Log, url string) { printed <- l.VerifierKey(); urls <- url }
	url := serveTest(t, cfg, urls)
	if p := <-printed; p != vkeys[0] {
		t.Fatalf("sumd serve prints %s, want the oldest key %s", p, vkeys[0])
	}
	_, body := fetch(t, url+"/")
	body = strings.ReplaceAll(body, "&#43;", "+")
	if want := `GOSUMDB="` + vkeys[0] + " " + url + `"`; !strings.Contains(body, want) {
		i := strings.Index(body, "GOSUMDB=")
		t.Errorf("the page does not say %s: %.200s", want, body[max(i, 0):])
	}
}

// TestPageManyPseudoVersions: a module with more index entries than a
// page reads (versionsScanned) whose releases come after them in byte
// order (every v0.0.0-... pseudo-version sorts before v1.0.0) still shows
// its releases, newest first.
func TestPageManyPseudoVersions(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	open := cfg.OpenLog
	cfg.OpenLog = func() (*sumdlog.Log, error) {
		l, err := open()
		if err != nil {
			return nil, err
		}
		var recs []gosum.Record
		h := "h1:" + strings.Repeat("A", 43) + "="
		base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range versionsScanned + 200 {
			v := fmt.Sprintf("v0.0.0-%s-%012x", base.Add(time.Duration(i)*time.Hour).Format("20060102150405"), i)
			recs = append(recs, gosum.Record{Path: "corp.example/mono", Version: v, Hash: h, GoMod: h})
		}
		for _, v := range []string{"v1.0.0", "v1.10.0", "v1.9.0", "v2.0.0+incompatible", "v1.11.0-rc.1"} {
			recs = append(recs, gosum.Record{Path: "corp.example/mono", Version: v, Hash: h, GoMod: h})
		}
		recs = append(recs, gosum.Record{Path: "corp.example/monoz", Version: "v1.99.0", Hash: h, GoMod: h})
		_, err = l.Add(context.Background(), recs...)
		return l, err
	}
	url := serveTest(t, cfg, urls)
	_, body := fetch(t, url+"/module?path=corp.example/mono")
	rest := body
	for _, w := range []string{"500 recorded versions shown, the newest; there are more.",
		">v2.0.0&#43;incompatible<", ">v1.11.0-rc.1<", ">v1.10.0<", ">v1.9.0<", ">v1.0.0<", ">v0.0.0-"} {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("no %q (in order) in the page of a module with %d pseudo-versions:\n%s", w, versionsScanned+200, body)
		}
		rest = rest[i+len(w):]
	}
	if strings.Contains(body, ">v1.99.0<") {
		t.Error("the page of corp.example/mono shows a version of corp.example/monoz")
	}
}

// A countingStore counts the reads of a store: each is a statement, a
// round trip, in a database.
type countingStore struct {
	*sumdlog.MemStore
	reads atomic.Int64
}

func (s *countingStore) Lookup(ctx context.Context, keys []string) ([]int64, error) {
	s.reads.Add(1)
	return s.MemStore.Lookup(ctx, keys)
}

func (s *countingStore) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	s.reads.Add(1)
	return s.MemStore.ReadRecords(ctx, ids)
}

func (s *countingStore) ScanIndex(ctx context.Context, from string, limit int) ([]sumdlog.IndexEntry, error) {
	s.reads.Add(1)
	return s.MemStore.ScanIndex(ctx, from, limit)
}

func (s *countingStore) ScanIndexBack(ctx context.Context, before string, limit int) ([]sumdlog.IndexEntry, error) {
	s.reads.Add(1)
	return s.MemStore.ScanIndexBack(ctx, before, limit)
}

func (s *countingStore) ScanReleases(ctx context.Context, path, from string, limit int) ([]sumdlog.IndexEntry, error) {
	s.reads.Add(1)
	return s.MemStore.ScanReleases(ctx, path, from, limit)
}

func (s *countingStore) ReadTiles(ctx context.Context, tiles []sumdlog.TileID) ([][]byte, error) {
	s.reads.Add(1)
	return s.MemStore.ReadTiles(ctx, tiles)
}

// TestPageModuleReads: a module's page, anyone's to ask for, reads its
// records (500 shown) and seeks its releases (100, past 1,200
// pseudo-versions) in a few store reads, not one or two per record and
// one per release: on PostgreSQL each is a round trip.
func TestPageModuleReads(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	skey, _, err := sumdlog.GenerateKey("serve.example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sumdlog.ParseKey(skey)
	store := &countingStore{MemStore: sumdlog.NewMemStore()}
	cfg.DBFile = "" // the log is in memory
	cfg.OpenLog = func() (*sumdlog.Log, error) {
		l, err := sumdlog.OpenStore(store, sumdlog.Options{Keys: []*sumdlog.Key{key}, Create: true, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		var recs []gosum.Record
		h := "h1:" + strings.Repeat("A", 43) + "="
		base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range versionsScanned + 200 {
			v := fmt.Sprintf("v0.0.0-%s-%012x", base.Add(time.Duration(i)*time.Hour).Format("20060102150405"), i)
			recs = append(recs, gosum.Record{Path: "corp.example/mono", Version: v, Hash: h, GoMod: h})
		}
		for i := range 100 {
			recs = append(recs, gosum.Record{Path: "corp.example/mono", Version: fmt.Sprintf("v1.%d.0", i), Hash: h, GoMod: h})
		}
		_, err = l.Add(context.Background(), recs...)
		return l, err
	}
	url := serveTest(t, cfg, urls)
	before := store.reads.Load()
	code, body := fetch(t, url+"/module?path=corp.example/mono")
	reads := store.reads.Load() - before
	if code != http.StatusOK {
		t.Fatalf("GET /module = %d\n%s", code, body)
	}
	rest := body
	for _, w := range []string{"500 recorded versions shown", ">v1.99.0<", ">v1.10.0<", ">v1.9.0<", ">v1.0.0<", ">v0.0.0-"} {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("no %q (in order) in the page:\n%s", w, body)
		}
		rest = rest[i+len(w):]
	}
	if n := strings.Count(body, `href="record?id=`); n != versionsShown {
		t.Errorf("the page links %d records, want %d", n, versionsShown)
	}
	if reads > 10 {
		t.Errorf("the page of a module cost %d store reads, want a few", reads)
	}
}

// TestPageNewestPseudoVersions: a module with more index entries than a
// page reads at once showed its releases with its OLDEST pseudo-versions,
// the first in byte order; it shows the newest, read backwards from the
// end of the newest releases' keys.
func TestPageNewestPseudoVersions(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	open := cfg.OpenLog
	pseudo := func(i int) string {
		base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		return fmt.Sprintf("v0.0.0-%s-%012x", base.Add(time.Duration(i)*time.Hour).Format("20060102150405"), i)
	}
	const n = 3*versionsScanned + 200
	cfg.OpenLog = func() (*sumdlog.Log, error) {
		l, err := open()
		if err != nil {
			return nil, err
		}
		var recs []gosum.Record
		h := "h1:" + strings.Repeat("A", 43) + "="
		for i := range n {
			recs = append(recs, gosum.Record{Path: "corp.example/mono", Version: pseudo(i), Hash: h, GoMod: h})
		}
		for _, v := range []string{"v1.0.0", "v1.1.0", "v1.1.1-0.20240101000000-abcdefabcdef", "v1.10.0", "v1.9.0", "v1.9.1-0.20240101000000-abcdefabcdef"} {
			recs = append(recs, gosum.Record{Path: "corp.example/mono", Version: v, Hash: h, GoMod: h})
		}
		_, err = l.Add(context.Background(), recs...)
		return l, err
	}
	url := serveTest(t, cfg, urls)
	_, body := fetch(t, url+"/module?path=corp.example/mono")
	rest := body
	for _, w := range []string{"500 recorded versions shown, the newest; there are more.", ">v1.10.0<", ">v1.9.1-0.20240101000000-abcdefabcdef<", ">v1.9.0<", ">v1.1.1-0.20240101000000-abcdefabcdef<",
		">v1.1.0<", ">v1.0.0<", ">" + pseudo(n-1) + "<", ">" + pseudo(n-2) + "<", ">" + pseudo(n-versionsShown+6) + "<"} {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("no %q (in order) in the page of a module with %d pseudo-versions:\n%.3000s", w, n, body)
		}
		rest = rest[i+len(w):]
	}
	if strings.Contains(body, ">"+pseudo(0)+"<") {
		t.Errorf("the page shows the oldest pseudo-version %s", pseudo(0))
	}
}

// sharedMem is a MemStore other Logs commit to, as processes do to a
// shared database.
type sharedMem struct{ *sumdlog.MemStore }

func (sharedMem) Shared() bool { return true }

// TestPageScanBeyondTree: a read of the index skips the entries beyond
// the log's published tree (another process's commits not adopted yet, a
// mirror's staging), and past a bound answers what it found, fewer than
// asked. The page took such a short backward read for one that had
// reached the module's first key, so it showed the oldest pseudo-versions
// of the release before as the newest, and said the list was complete;
// it reads on, and says the list is partial.
func TestPageScanBeyondTree(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	skey, _, err := sumdlog.GenerateKey("serve.example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sumdlog.ParseKey(skey)
	store := sharedMem{sumdlog.NewMemStore()}
	pseudo := func(release string, i int) string {
		base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		return fmt.Sprintf("%s-0.%s-%012x", release, base.Add(time.Duration(i)*time.Hour).Format("20060102150405"), i)
	}
	add := func(l *sumdlog.Log, versions []string) error {
		h := "h1:" + strings.Repeat("A", 43) + "="
		var recs []gosum.Record
		for _, v := range versions {
			recs = append(recs, gosum.Record{Path: "corp.example/mono", Version: v, Hash: h, GoMod: h})
		}
		_, err := l.Add(context.Background(), recs...)
		return err
	}
	const old = versionsScanned + 100
	cfg.DBFile = "" // the log is in memory
	cfg.OpenLog = func() (*sumdlog.Log, error) {
		opts := sumdlog.Options{Keys: []*sumdlog.Key{key}, Create: true, Logger: cfg.Logger, RefreshInterval: time.Hour}
		l, err := sumdlog.OpenStore(store, opts)
		if err != nil {
			return nil, err
		}
		published := []string{"v1.0.0", "v1.0.0-rc.1"}
		for i := range old {
			published = append(published, pseudo("v0.0.0", i))
		}
		if err := add(l, published); err != nil {
			return nil, err
		}
		// Another process commits more pseudo-versions of v1.0.0 than a
		// read skips, between the release and its rc.1 in key order.
		opts.Create = false
		other, err := sumdlog.OpenStore(store, opts)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { other.Close() })
		var beyond []string
		for i := range 5 * sumdlog.MaxScanIndex {
			beyond = append(beyond, pseudo("v1.0.0", i))
		}
		return l, add(other, beyond)
	}
	url := serveTest(t, cfg, urls)
	_, body := fetch(t, url+"/module?path=corp.example/mono")
	rest := body
	for _, w := range []string{"shown: the newest of those one page reads", ">v1.0.0<", ">v1.0.0-rc.1<", ">" + pseudo("v0.0.0", old-1) + "<", ">" + pseudo("v0.0.0", old-2) + "<"} {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("no %q (in order) in the page:\n%.2000s", w, body[strings.Index(body, "<main>"):])
		}
		rest = rest[i+len(w):]
	}
	if strings.Contains(body, pseudo("v1.0.0", 0)) {
		t.Errorf("the page shows %s, beyond the published tree", pseudo("v1.0.0", 0))
	}
}

// TestPageManyReleasesReads: the page of a module of 32,000 versions in
// 1,000 releases of 32 (pre-releases, pseudo-versions) sought the first
// key of each release one store read apiece, about 1,000 reads (on
// PostgreSQL, round trips) for one anonymous request; it costs a few,
// whatever the releases.
func TestPageManyReleasesReads(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	skey, _, err := sumdlog.GenerateKey("serve.example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sumdlog.ParseKey(skey)
	store := &countingStore{MemStore: sumdlog.NewMemStore()}
	const releases, each = versionsScanned, 32
	cfg.DBFile = "" // the log is in memory
	cfg.OpenLog = func() (*sumdlog.Log, error) {
		l, err := sumdlog.OpenStore(store, sumdlog.Options{Keys: []*sumdlog.Key{key}, Create: true, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		var recs []gosum.Record
		h := "h1:" + strings.Repeat("A", 43) + "="
		for i := range releases {
			recs = append(recs, gosum.Record{Path: "corp.example/many", Version: fmt.Sprintf("v1.%d.0", i), Hash: h, GoMod: h})
			for j := 1; j < each; j++ {
				v := fmt.Sprintf("v1.%d.0-rc.%d", i, j)
				recs = append(recs, gosum.Record{Path: "corp.example/many", Version: v, Hash: h, GoMod: h})
			}
		}
		_, err = l.Add(context.Background(), recs...)
		return l, err
	}
	url := serveTest(t, cfg, urls)
	before := store.reads.Load()
	code, body := fetch(t, url+"/module?path=corp.example/many")
	reads := store.reads.Load() - before
	if code != http.StatusOK {
		t.Fatalf("GET /module = %d\n%s", code, body)
	}
	rest := body
	for _, w := range []string{"500 recorded versions shown, the newest; there are more.", ">v1.999.0<", ">v1.999.0-rc.31<", ">v1.999.0-rc.1<", ">v1.998.0<", ">v1.984.0<"} {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("no %q (in order) in the page:\n%.2000s", w, body[strings.Index(body, "<main>"):])
		}
		rest = rest[i+len(w):]
	}
	t.Logf("%d store reads", reads)
	const bound = 12 // one forward read, one of releases, newestReads back, the records and their tiles
	if reads > bound {
		t.Errorf("the page of a module of %d versions in %d releases cost %d store reads, want at most %d", releases*each, releases, reads, bound)
	}
}

// TestPagePublicURL: behind a reverse proxy that terminates TLS the page's
// GOSUMDB named the URL the request reached sumd at (http://, the internal
// host), which users copy. With PublicURL set it names that URL; no
// X-Forwarded-* header changes it, with or without.
func TestPagePublicURL(t *testing.T) {
	for _, public := range []string{"", "https://sumd.corp.example/sumdb"} {
		cfg, urls, _ := testConfig(t)
		cfg.PublicURL = public
		printed := make(chan string, 1)
		ready := cfg.Ready
		cfg.Ready = func(l *sumdlog.Log, url string) { printed <- l.VerifierKey(); ready(l, url) }
		url := serveTest(t, cfg, urls)
		vkey := <-printed
		want := `GOSUMDB="` + vkey + " " + cmp.Or(public, url) + `"`
		req, err := http.NewRequest("GET", url+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		body := strings.ReplaceAll(string(data), "&#43;", "+")
		if !strings.Contains(body, want) {
			i := strings.Index(body, "GOSUMDB=")
			t.Errorf("public URL %q: the page does not say %s: %.200s", public, want, body[max(i, 0):])
		}
	}
}
