package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testlog"
	sumdlog "github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tuf"
)

// fetch GETs url and returns the status code and body.
func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func fetchStatus(t *testing.T, url string) *Status {
	t.Helper()
	code, body := fetch(t, url+"/status")
	if code != 200 {
		t.Fatalf("/status = %d %s", code, body)
	}
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	return &s
}

// serveTest runs cfg until the test ends and returns its URL.
func serveTest(t testing.TB, cfg Config, urls <-chan string) string {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	url, done := start(t, ctx, cfg, urls)
	t.Cleanup(func() {
		stop()
		if err := wait(t, done); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return url
}

// failingSyncer reports a registry it could not read, a conflict and a
// version the cross-check refused.
type failingSyncer struct{}

func (failingSyncer) Sync(ctx context.Context) (*SyncReport, error) {
	return &SyncReport{
		Outcomes:  map[string]int{"recorded": 2, "error": 1},
		Failures:  []error{errors.New("GET https://registry.internal.example/v2/: connection refused")},
		Conflicts: []error{errors.New("example.com/m@v1.0.0 re-published")},
		Refused:   []error{errors.New("golang.org/x/text@v0.3.0: checksum mismatch")},
		Places: []SyncPlace{
			{Outcome: "error", Path: "modules", Catalog: true},
			{Outcome: "conflict", Path: "modules/example.com/m:v1.0.0"},
			{Outcome: "refused", Path: "modules/golang.org/x/text:v0.3.0"},
		},
	}, nil
}

// TestStatusDegradedSync: a sync pass that could not read a registry shows
// in /status, /healthz (200, degraded) and the page, without the
// registry's URL.
func TestStatusDegradedSync(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	cfg.Sync = &Sync{Interval: time.Hour, Registries: []string{"registry.internal.example/modules"},
		Syncer: func(*sumdlog.Log) (Syncer, error) { return failingSyncer{}, nil }}
	url := serveTest(t, cfg, urls)
	var s *Status
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if s = fetchStatus(t, url); s.Sync != nil && s.Sync.LastPass != nil || time.Now().After(deadline) {
			break
		}
	}
	if s.Sync == nil || s.Sync.LastPass == nil || s.Sync.LastPass.Failures != 1 || s.Sync.LastPass.Outcomes["recorded"] != 2 || s.Sync.LastSuccess != nil {
		t.Fatalf("sync status = %+v", s.Sync)
	}
	if s.Health.State != Degraded || len(s.Health.Problems) != 3 || s.Sync.LastPass.Refused != 1 {
		t.Fatalf("health = %+v, last pass %+v, want degraded by three sync problems", s.Health, s.Sync.LastPass)
	}
	code, body := fetch(t, url+"/healthz")
	if code != 200 || !strings.HasPrefix(body, "degraded: sync: the last pass could not read 1 place: the catalog of the registry (repositories under modules); check") {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if m := s.Health.Problems[1].Message; !strings.HasPrefix(m, "the last pass refused 1 tag re-published with other content than the log records for their version: modules/example.com/m:v1.0.0; move") ||
		!strings.HasPrefix(s.Health.Problems[2].Message, "the last pass refused 1 tag whose hashes the cross-check contradicts (the upstream checksum database holds others, or none): modules/golang.org/x/text:v0.3.0; publish") {
		t.Errorf("problems %q", s.Health.Problems)
	}
	_, page := fetch(t, url+"/")
	for _, want := range []string{`class="badge degraded"`, "could not read 1 place", `id="sync"`,
		// The problems row counts what sumd status counts.
		"<td>1 unreadable, 1 conflicts, 1 refused</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	_, metrics := fetch(t, url+"/metrics")
	for _, want := range []string{"sumd_health_state 1\n", `sumd_health_problems{part="sync"} 3` + "\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, body := range []string{body, page} {
		if strings.Contains(body, "registry.internal.example") {
			t.Errorf("an anonymous page shows the registry's name:\n%s", body)
		}
	}
}

// TestStatusTUF: the TUF section shows each role, and a repository whose
// directory is removed under the server is a problem within seconds.
func TestStatusTUF(t *testing.T) {
	cfg, urls, logs, dir := tufConfig(t)
	tufStatusMaxAge = 50 * time.Millisecond
	t.Cleanup(func() { tufStatusMaxAge = 5 * time.Second })
	url := serveTest(t, cfg, urls)

	s := fetchStatus(t, url)
	if s.Health.State != Healthy || s.TUF == nil || len(s.TUF.Roles) != 4 {
		t.Fatalf("status with a fresh repository: health %+v, tuf %+v", s.Health, s.TUF)
	}
	for _, r := range s.TUF.Roles {
		if r.Version < 1 || r.Expires.Before(time.Now().Add(20*time.Hour)) {
			t.Errorf("role %+v: want a version and an expiry a day or more ahead", r)
		}
	}
	// Moved away in one step, not removed file by file: the re-signer may
	// be writing a file of the repository (creating its directory again)
	// at that instant, which made RemoveAll fail with "directory not
	// empty". Whatever it writes afterwards is a lone file, which does not
	// make a readable repository.
	if err := os.Rename(dir, dir+".removed"); err != nil {
		t.Fatal(err)
	}
	// The re-signer may report its own failure too, before or after the
	// status reader's: wait for the reader's among them.
	unreadable := func(p Problem) bool { return p.String() == "tuf: the repository cannot be read (see the server log)" }
	for deadline := time.Now().Add(tufStatusMaxAge + 5*time.Second); ; time.Sleep(100 * time.Millisecond) {
		if s = fetchStatus(t, url); slices.ContainsFunc(s.Health.Problems, unreadable) || time.Now().After(deadline) {
			break
		}
	}
	if s.Health.State != Degraded || !slices.ContainsFunc(s.Health.Problems, unreadable) {
		t.Fatalf("health after removing the TUF directory = %+v", s.Health)
	}
	// "see the server log": it says why already, once however often the
	// status is asked.
	time.Sleep(2 * tufStatusMaxAge) // past the cached read: read again
	fetchStatus(t, url)
	if n := strings.Count(logs.String(), "tuf: the repository cannot be read"); n != 1 || !strings.Contains(logs.String(), dir) {
		t.Errorf("the server log has the unreadable repository %d times (want 1, naming %s):\n%s", n, dir, logs.String())
	}
	if code, body := fetch(t, url+"/healthz"); code != 200 || !strings.HasPrefix(body, "degraded: ") || !strings.Contains(body, "tuf: the repository cannot be read") || strings.Contains(body, dir) {
		t.Errorf("/healthz = %d %q", code, body)
	}
}

// TestTUFTargetsUnreadable: a repository whose published database (its
// target) cannot be read is a problem that names no local path, since
// /healthz is open to anonymous clients; the server log says why, once.
func TestTUFTargetsUnreadable(t *testing.T) {
	cfg, urls, logs, dir := tufConfig(t)
	tufStatusMaxAge = 50 * time.Millisecond
	t.Cleanup(func() { tufStatusMaxAge = 5 * time.Second })
	url := serveTest(t, cfg, urls)
	if code, body := fetch(t, url+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if err := os.RemoveAll(filepath.Join(dir, "targets")); err != nil {
		t.Fatal(err)
	}
	const want = "tuf: the published database cannot be read (see the server log)"
	var code int
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, body = fetch(t, url+"/healthz"); strings.Contains(body, want) || time.Now().After(deadline) {
			break
		}
	}
	if code != 200 || !strings.Contains(body, want) || strings.Contains(body, filepath.Dir(dir)) {
		t.Errorf("/healthz with the targets removed = %d %q, want %q and no path", code, body, want)
	}
	time.Sleep(2 * tufStatusMaxAge) // past the cached read: read again
	fetch(t, url+"/healthz")
	if n := strings.Count(logs.String(), "tuf: the published database cannot be read"); n != 1 || !strings.Contains(logs.String(), dir) {
		t.Errorf("the server log has the unreadable database %d times (want 1, naming %s):\n%s", n, dir, logs.String())
	}
}

// tufConfig is a server configuration serving a new TUF repository in dir.
func tufConfig(t *testing.T) (Config, <-chan string, *testlog.Buffer, string) {
	return tufConfigPublishing(t, func(vkey string) []string { return []string{vkey} })
}

// tufConfigPublishing is tufConfig with a repository that publishes
// published(the log's verifier key).
func tufConfigPublishing(t *testing.T, published func(string) []string) (Config, <-chan string, *testlog.Buffer, string) {
	cfg, urls, logs := testConfig(t)
	dir := filepath.Join(t.TempDir(), "tuf")
	skey, vkey, err := sumdlog.GenerateKey("serve.example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sumdlog.ParseKey(skey)
	cfg.OpenLog = func() (*sumdlog.Log, error) {
		return sumdlog.Open(cfg.DBFile, sumdlog.Options{Keys: []*sumdlog.Key{key}, Create: true, Logger: cfg.Logger})
	}
	db, err := tuf.NewDatabase(published(vkey), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tuf.Init(dir, tuf.InitOptions{Database: db, OfflineKeys: filepath.Join(t.TempDir(), "offline")}); err != nil {
		t.Fatal(err)
	}
	cfg.TUF = &TUF{Dir: dir, OnlineKeys: filepath.Join(dir, tuf.DefaultOnlineKeys)}
	return cfg, urls, logs, dir
}

// TestTUFPublishesOtherKeys: a repository that does not publish the keys
// of the log served (another key, a key the log does not sign with) is a
// problem of the status: clients that learn them fail every lookup.
func TestTUFPublishesOtherKeys(t *testing.T) {
	other := func(t *testing.T) string {
		_, vkey, err := sumdlog.GenerateKey("serve.example.com")
		if err != nil {
			t.Fatal(err)
		}
		return vkey
	}
	for name, published := range map[string]func(string) []string{
		"other":   func(string) []string { return []string{other(t)} },
		"more":    func(vkey string) []string { return []string{vkey, other(t)} },
		"matches": func(vkey string) []string { return []string{vkey} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, urls, _, _ := tufConfigPublishing(t, published)
			s := fetchStatus(t, serveTest(t, cfg, urls))
			mismatch := slices.ContainsFunc(s.Health.Problems, func(p Problem) bool {
				return strings.Contains(p.String(), "sumd tuf publish")
			})
			if mismatch != (name != "matches") {
				t.Errorf("published keys %s: problems %v", name, s.Health.Problems)
			}
		})
	}
}

// TestTUFStartReplacesIgnored starts a server on a repository whose
// timestamp.json was written without the keys: the server replaces it
// before serving, and its log names the file it ignored.
func TestTUFStartReplacesIgnored(t *testing.T) {
	cfg, urls, logs, dir := tufConfig(t)
	ts := filepath.Join(dir, "metadata", "timestamp.json")
	if err := os.WriteFile(ts, []byte(`{"signed": {"_type": "timestamp", "version": 9223372036854775807}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	url := serveTest(t, cfg, urls)
	if s := fetchStatus(t, url); s.Health.State != Healthy {
		t.Errorf("health after replacing the timestamp: %+v", s.Health)
	}
	if out := logs.String(); strings.Count(out, "ignoring TUF metadata that does not verify") != 1 || !strings.Contains(out, "timestamp.json") {
		t.Errorf("the server log does not name the ignored timestamp.json once:\n%s", out)
	}
}

// TestTUFOfflineKeyInOnlineDir: a root or targets key in the online keys'
// directory (the one tuf init -keys wrote into, passed as
// -tuf-online-keys) is never read, but on the serving host it defeats
// TUF's split of keys: the server log names the file and the status shows
// the problem, both saying to move it offline.
func TestTUFOfflineKeyInOnlineDir(t *testing.T) {
	cfg, urls, logs, _ := tufConfig(t)
	var names []string
	for _, role := range []string{"root", "targets"} {
		k, err := tuf.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		name := tuf.KeyFileName(role, k)
		if err := k.WriteFile(filepath.Join(cfg.TUF.OnlineKeys, name)); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	s := fetchStatus(t, serveTest(t, cfg, urls))
	if s.Health.State != Degraded || !slices.ContainsFunc(s.Health.Problems, func(p Problem) bool {
		return p.Part == "tuf" && strings.Contains(p.Message, names[0]) && strings.Contains(p.Message, names[1]) && strings.Contains(p.Message, "offline")
	}) {
		t.Errorf("status with root and targets keys in the online keys' directory: %+v", s.Health)
	}
	out := logs.String()
	for _, name := range names {
		if !strings.Contains(out, filepath.Join(cfg.TUF.OnlineKeys, name)) {
			t.Errorf("the server log does not name %s:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "move") {
		t.Errorf("the server log does not say to move the keys offline:\n%s", out)
	}
}

// TestTUFExpiryWarnings checks the thresholds on a repository read at
// chosen times.
func TestTUFExpiryWarnings(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := &tuf.Status{
		Versions: map[string]int64{"root": 1, "targets": 2, "snapshot": 3, "timestamp": 4},
		Expires: map[string]time.Time{
			"root": now.Add(365 * 24 * time.Hour), "targets": now.Add(10 * 24 * time.Hour),
			"snapshot": now.Add(3 * 24 * time.Hour), "timestamp": now.Add(90 * time.Minute),
		},
		Problems: []error{errors.New("timestamp.json: not signed")},
	}
	p := &tufPart{now: func() time.Time { return now }, status: st, readAt: now, signedAt: now}
	var s Status
	p.report(&s)
	var got []string
	for _, pr := range s.Health.Problems {
		got = append(got, pr.String())
	}
	want := []string{
		"tuf: the targets metadata expires in 10 days: renew it with sumd tuf publish",
		"tuf: the timestamp metadata expires in 1h30m0s: sumd serve re-signs it: see the server log",
		"tuf: metadata files that do not verify are ignored: 1 (see the server log)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTUFExpiredWording: a role past its expiry is reported as expired,
// not as "expires expired 2 days ago".
func TestTUFExpiredWording(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := &tuf.Status{
		Versions: map[string]int64{"root": 1, "targets": 2, "snapshot": 3, "timestamp": 4},
		Expires: map[string]time.Time{
			"root": now.Add(365 * 24 * time.Hour), "targets": now.Add(-50 * time.Hour),
			"snapshot": now.Add(3 * 24 * time.Hour), "timestamp": now.Add(-3 * 24 * time.Hour),
		},
	}
	p := &tufPart{now: func() time.Time { return now }, status: st, readAt: now, signedAt: now}
	var s Status
	p.report(&s)
	var got []string
	for _, pr := range s.Health.Problems {
		got = append(got, pr.String())
	}
	want := []string{
		"tuf: the targets metadata expired 2 days ago: renew it with sumd tuf publish",
		"tuf: the timestamp metadata expired 3 days ago: sumd serve re-signs it: see the server log",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestHistory: the records per day and the last commit, across days and a
// restart (the history is kept in the log's auxiliary state).
func TestHistory(t *testing.T) {
	ctx := context.Background()
	cfg, _, logs := testConfig(t)
	l, err := cfg.OpenLog()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	clock := day(1, 9)
	open := func() *history {
		h, err := loadHistory(ctx, l, logs.Logger(), func() time.Time { return clock })
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	add := func(h *history, n int) {
		for range n {
			if _, err := l.Add(ctx, testRecord(int(testSize(t, l)))); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h := open() // empty log: the first head is size 0
	clock = day(1, 10)
	add(h, 3)
	clock = day(1, 11)
	add(h, 2)
	clock = day(3, 8)
	add(h, 4)
	h.save(ctx)
	clock = day(3, 9)
	h = open() // a restart: the saved history carries on
	clock = day(4, 7)
	add(h, 1)

	var s Status
	h.report(&s)
	want := []DayCount{{"2026-11-01", 5}, {"2026-11-03", 4}, {"2026-11-04", 1}}
	if fmt.Sprint(s.Log.RecordsPerDay) != fmt.Sprint(want) {
		t.Errorf("records per day = %v, want %v", s.Log.RecordsPerDay, want)
	}
	if s.Log.LastCommit == nil || !s.Log.LastCommit.Equal(day(4, 7)) {
		t.Errorf("last commit = %v, want %v", s.Log.LastCommit, day(4, 7))
	}
	if n := len(s.Log.Heads); n != 4 || s.Log.Heads[n-1].TreeSize != 10 {
		t.Errorf("heads = %+v", s.Log.Heads)
	}
}

// TestHistoryBounded: a year of daily growth keeps maxHistory days. The
// oldest head kept, the last of a day whose earlier records were trimmed,
// showed as a day of 0 records in records_per_day (/status, sumd status
// -json); it is only where the next day counts from.
func TestHistoryBounded(t *testing.T) {
	h := &history{}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for d := range 365 {
		h.observe(tlog.Tree{N: int64(d + 1)}, start.AddDate(0, 0, d))
	}
	if n := len(h.state.Heads); n != maxHistory+1 {
		t.Errorf("%d heads kept, want %d", n, maxHistory+1)
	}
	days := perDay(h.state.Heads, h.state.Trimmed)
	if last := days[len(days)-1]; last.Records != 1 || last.Day != "2026-12-31" {
		t.Errorf("last day = %+v", last)
	}
	if len(days) != maxHistory || days[0].Records != 1 || days[0].Day != "2026-10-01" {
		t.Errorf("%d days, the oldest %+v; want %d days, the oldest 2026-10-01 with 1 record", len(days), days[0], maxHistory)
	}
}

// TestHistoryFullUntrimmed: a history of maxHistory+1 heads on as many
// days, none trimmed yet, lists every day, the first head's own counted
// from it as for a shorter one: only a trimmed history's oldest head is
// left out (TestHistoryBounded), though both hold as many heads.
func TestHistoryFullUntrimmed(t *testing.T) {
	h := &history{}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for d := range maxHistory + 1 {
		h.observe(tlog.Tree{N: int64(d)}, start.AddDate(0, 0, d))
	}
	if n := len(h.state.Heads); n != maxHistory+1 {
		t.Fatalf("%d heads kept, want %d", n, maxHistory+1)
	}
	var s Status
	h.report(&s)
	days := s.Log.RecordsPerDay
	if len(days) != maxHistory+1 || days[0].Day != "2026-01-01" || days[0].Records != 0 || days[1].Records != 1 {
		t.Errorf("%d days, the first two %+v; want %d days, the first 2026-01-01 with 0 records, then 1 a day", len(days), days[:2], maxHistory+1)
	}
}

func testSize(t *testing.T, l *sumdlog.Log) int64 {
	t.Helper()
	tree, err := l.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tree.N
}

// testRecord returns a distinct valid record for i.
func testRecord(i int) gosum.Record {
	path := fmt.Sprintf("example.com/mod%d", i%7)
	version := fmt.Sprintf("v1.%d.0", i)
	h := "h1:" + strings.Repeat("A", 43) + "="
	return gosum.Record{Path: path, Version: version, Hash: h, GoMod: h}
}

// TestStatusCounters: requests to the admin API are counted by credential,
// route and outcome (the status code), refused ones included, and the
// status shows them beside the upstream counters.
func TestStatusCounters(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	adm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) })
	cfg.Surface = func(l *sumdlog.Log) (sumdb.ServerOps, http.Handler, error) { return l, adm, nil }
	const token = "admin-token-for-the-counters"
	cfg.Access.AdminTokenFile = filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(cfg.Access.AdminTokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	url := serveTest(t, cfg, urls)
	for range 2 {
		http.Post(url+"/admin/fetch", "application/json", strings.NewReader("{}"))
	}
	for _, path := range []string{"/admin/upload", "/admin/nothing"} {
		req, _ := http.NewRequest("POST", url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("POST", url+"/admin/fetch", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}

	got := map[string]float64{}
	for _, c := range fetchStatus(t, url).Counters {
		if c.Name == "sumd_admin_requests_total" {
			got[c.Labels["credential"]+" "+c.Labels["route"]+" "+c.Labels["outcome"]] = c.Value
		}
	}
	want := map[string]float64{"anonymous fetch 401": 2, "admin-token upload 200": 1, "admin-token other 200": 1, "invalid fetch 401": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("admin counters = %v, want %v", got, want)
	}
}

// problemOps is a log with problems of its own, as the upstream recorder
// has when its temporary directory fails.
type problemOps struct {
	sumdb.ServerOps
	problems []string
}

func (p *problemOps) Problems() []string { return p.problems }

// TestStatusSurfaceProblems: the problems of the protocol's ops (the
// upstream recorder's failures of -tmp-dir) make the server degraded in
// /status and /healthz.
func TestStatusSurfaceProblems(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	cfg.Surface = func(l *sumdlog.Log) (sumdb.ServerOps, http.Handler, error) {
		return &problemOps{ServerOps: l, problems: []string{"sumd could not store module zips"}}, nil, nil
	}
	url := serveTest(t, cfg, urls)
	if s := fetchStatus(t, url); s.Health.State != Degraded || len(s.Health.Problems) != 1 || s.Health.Problems[0].Part != "upstream" {
		t.Errorf("health = %+v, want degraded by the upstream's problem", s.Health)
	}
	if code, body := fetch(t, url+"/healthz"); code != 200 || !strings.HasPrefix(body, "degraded: upstream: sumd could not store module zips") {
		t.Errorf("/healthz = %d %q", code, body)
	}
}

// TestTUFResignFailingSince: a re-signing that keeps failing is shown with
// when the failures began, not only the last success before them (a
// minute earlier, or days), and a success ends it.
func TestTUFResignFailingSince(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := start
	st := &tuf.Status{
		Versions: map[string]int64{"root": 1, "timestamp": 4},
		Expires:  map[string]time.Time{"root": start.Add(365 * 24 * time.Hour), "timestamp": start.Add(24 * time.Hour)},
	}
	// Read "later" than the clock below: the repository (none) is not
	// read again.
	p := &tufPart{now: func() time.Time { return now }, status: st, readAt: start.Add(time.Hour), signedAt: start}
	problems := func() string {
		var s Status
		p.report(&s)
		var got []string
		for _, pr := range s.Health.Problems {
			got = append(got, pr.String())
		}
		return strings.Join(got, "\n")
	}
	broken := errors.New("online keys gone")
	for _, m := range []int{1, 2, 3} {
		now = start.Add(time.Duration(m) * time.Minute)
		p.signed(broken)
	}
	want := "tuf: re-signing the online metadata has failed since 2026-03-01T12:01:00Z, last succeeded at 2026-03-01T12:00:00Z (see the server log)"
	if got := problems(); got != want {
		t.Errorf("after 3 failures:\n%s\nwant:\n%s", got, want)
	}
	now = start.Add(4 * time.Minute)
	p.signed(nil)
	if got := problems(); got != "" {
		t.Errorf("after a success: %s", got)
	}
	now = start.Add(5 * time.Minute)
	p.signed(broken)
	want = "tuf: re-signing the online metadata has failed since 2026-03-01T12:05:00Z, last succeeded at 2026-03-01T12:04:00Z (see the server log)"
	if got := problems(); got != want {
		t.Errorf("after failing again:\n%s\nwant:\n%s", got, want)
	}
}

// TestTUFRequestsObserved: requests to /tuf/ have their request log line
// and are counted in sumd_http_requests_total (route "tuf"), as those of
// every other route are.
func TestTUFRequestsObserved(t *testing.T) {
	cfg, urls, logs, _ := tufConfig(t)
	url := serveTest(t, cfg, urls)
	for path, want := range map[string]int{"/tuf/metadata/timestamp.json": 200, "/tuf/metadata/nonesuch.json": 404} {
		if code, body := fetch(t, url+path); code != want {
			t.Fatalf("GET %s: %d %q, want %d", path, code, body, want)
		}
		if line := `msg="http request" method=GET path=` + path + ` route=tuf status=` + strconv.Itoa(want); !strings.Contains(logs.String(), line) {
			t.Errorf("the request log lacks %s:\n%s", line, logs.String())
		}
	}
	got := map[string]float64{}
	mfs, err := cfg.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if mf.GetName() == "sumd_http_requests_total" && labels["route"] == "tuf" {
				got[labels["code"]] = m.GetCounter().GetValue()
			}
		}
	}
	if want := map[string]float64{"200": 1, "404": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sumd_http_requests_total{route=\"tuf\"} by code = %v, want %v", got, want)
	}
}

// budgetSyncer reports a pass that ran out of its download budget.
type budgetSyncer struct{}

func (budgetSyncer) Sync(ctx context.Context) (*SyncReport, error) {
	return &SyncReport{Outcomes: map[string]int{"recorded": 3}, BudgetSpent: true}, nil
}

// TestStatusSyncBudgetSpent: a sync pass that spent its download budget
// shows in /status and the page as such, so that an operator sees the
// registries were not all read and that the next pass carries on, but it
// is no problem (a first pass over a large registry does so): the server
// stays healthy and the pass counts as a success. The artifact it stopped
// at names a registry, which the status does not.
func TestStatusSyncBudgetSpent(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	cfg.Sync = &Sync{Interval: time.Hour, Registries: []string{"registry.internal.example/modules"},
		Syncer: func(*sumdlog.Log) (Syncer, error) { return budgetSyncer{}, nil }}
	url := serveTest(t, cfg, urls)
	var s *Status
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if s = fetchStatus(t, url); s.Sync != nil && s.Sync.LastPass != nil || time.Now().After(deadline) {
			break
		}
	}
	if s.Sync == nil || s.Sync.LastPass == nil || !s.Sync.LastPass.BudgetSpent || s.Sync.LastSuccess == nil {
		t.Fatalf("sync status = %+v, want the last pass's budget spent, and it a success", s.Sync)
	}
	if s.Health.State != Healthy || len(s.Health.Problems) != 0 {
		t.Fatalf("health = %+v, want healthy", s.Health)
	}
	_, page := fetch(t, url+"/")
	if want := "download budget spent: the next pass carries on from where it stopped"; !strings.Contains(page, want) {
		t.Errorf("page lacks %q", want)
	}
	if strings.Contains(page, "registry.internal.example") {
		t.Errorf("an anonymous page shows the registry's name:\n%s", page)
	}
}

// TestSyncProblemsNamePlaces: each sync problem names where (the
// repository and tag, never the registry), what is wrong and what to do;
// they said only how many, and "see the server log".
func TestSyncProblemsNamePlaces(t *testing.T) {
	p := &syncPart{state: SyncState{LastPass: &SyncPass{Failures: 2, Conflicts: 2}}, places: []SyncPlace{
		{Outcome: "error", Path: "gomod/example.com/a:v1.0.0"},
		{Outcome: "error", Path: "gomod/example.com/b", Others: 3},
		{Outcome: "conflict", Path: "gomod/example.com/c:v1.0.0", Unread: true},
		{Outcome: "retagged", Path: "gomod/example.com/d:v2.0.0"},
	}}
	var s Status
	p.report(&s)
	want := []string{
		"sync: the last pass could not read 2 places: gomod/example.com/a:v1.0.0, the tags of gomod/example.com/b and 3 more repositories of its registry; check that the registry answers and lets sumd's credentials read there (the server log has each error)",
		"sync: the last pass refused 1 tag re-published with other content than the log records for their version: gomod/example.com/c:v1.0.0 (found by an earlier pass, not read again); move each tag back to the recorded release or delete it, and publish changes as new versions (the server log has both hashes)",
		"sync: the last pass refused 1 tag of recorded versions moved to content no configured key signed: gomod/example.com/d:v2.0.0; move each tag back to the recorded release or delete it (the server log says why no signature verified)",
	}
	var got []string
	for _, pr := range s.Health.Problems {
		got = append(got, pr.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSyncConflictNotHiddenByUnreadRetags: an earlier pass's re-tags not
// read again come as one error of the pass's Conflicts but one place each;
// the conflicts were counted as the errors less the re-tagged places, so
// two unread re-tags hid a conflict this pass found: no problem named it.
func TestSyncConflictNotHiddenByUnreadRetags(t *testing.T) {
	// Conflicts: the one error for both unread re-tags, and the conflict.
	p := &syncPart{state: SyncState{LastPass: &SyncPass{Conflicts: 2}}, places: []SyncPlace{
		{Outcome: "retagged", Path: "gomod/example.com/d:v2.0.0", Unread: true},
		{Outcome: "retagged", Path: "gomod/example.com/e:v2.0.0", Unread: true},
		{Outcome: "conflict", Path: "gomod/example.com/c:v1.0.0"},
	}}
	var s Status
	p.report(&s)
	var got []string
	for _, pr := range s.Health.Problems {
		got = append(got, pr.String())
	}
	if len(got) != 2 || !strings.Contains(strings.Join(got, "\n"), "refused 1 tag re-published with other content than the log records for their version: gomod/example.com/c:v1.0.0;") {
		t.Errorf("problems:\n%s\nwant the re-tags' and the conflict's", strings.Join(got, "\n"))
	}
}
