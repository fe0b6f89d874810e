package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/testproxy"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// pgLog is a log in a PostgreSQL database of the test server, with a key,
// an admin token and a module proxy of versions not yet recorded: what
// several `sumd serve` processes share.
type pgLog struct {
	pg                 *pgtest.Server
	dir, db            string // db is the postgres:// URL
	key, vkey, token   string
	proxyDir, proxyURL string
	mods               []testproxy.Module
}

func newPGLog(t *testing.T, mods []testproxy.Module) *pgLog {
	t.Helper()
	pg := pgtest.Shared(t)
	dir := t.TempDir()
	e := &pgLog{pg: pg, dir: dir, db: pg.NewDatabase(t), proxyDir: filepath.Join(dir, "proxy"), mods: mods}
	e.vkey = strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	e.key = filepath.Join(dir, "keys", e2eName+".key")
	e.token = writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	var err error
	if e.proxyURL, err = testproxy.Build(e.proxyDir, mods); err != nil {
		t.Fatal(err)
	}
	return e
}

// serve starts `sumd serve` on the database, recording from the proxy.
func (e *pgLog) serve(t *testing.T, extra ...string) *sumdServer {
	t.Helper()
	return startServer(t, append([]string{"-db", e.db, "-key", e.key, "-upstream", e.proxyURL,
		"-admin-token-file", e.token, "-refresh-interval", "200ms", "-max-head-age", "2s"}, extra...)...)
}

// serveTogether starts n `sumd serve` processes at once (racing to
// create the log, with -create) and waits until each serves.
func (e *pgLog) serveTogether(t *testing.T, n int, extra ...string) []*sumdServer {
	t.Helper()
	args := append([]string{"serve", "-listen", "127.0.0.1:0", "-db", e.db, "-key", e.key, "-upstream", e.proxyURL,
		"-admin-token-file", e.token, "-refresh-interval", "200ms", "-max-head-age", "2s"}, extra...)
	servers := make([]*sumdServer, n)
	outs := make([]io.Reader, n)
	for i := range servers {
		s := &sumdServer{t: t, stderr: new(testlog.Buffer), cmd: sumdCommand(t, args...)}
		s.cmd.Stderr = s.stderr
		out, err := s.cmd.StdoutPipe()
		if err == nil {
			err = s.cmd.Start()
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.stop)
		servers[i], outs[i] = s, out
	}
	for i, s := range servers {
		line, err := startLine(s.cmd, outs[i])
		m := gosumdbLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			t.Fatalf("sumd serve %d printed %q (%v), want a GOSUMDB line; stderr:\n%s", i, line, err, s.stderr)
		}
		s.gosumdb, s.url = m[1]+" "+m[2], m[2]
	}
	return servers
}

// manyModules returns n module versions over n/100 module paths.
func manyModules(n int) []testproxy.Module {
	var mods []testproxy.Module
	for p := 0; len(mods) < n; p++ {
		mods = append(mods, testproxy.Versions(fmt.Sprintf("example.com/pg/m%d", p), min(100, n-len(mods)))...)
	}
	return mods
}

var httpClient = &http.Client{Timeout: time.Minute}

// lookup asks server url for m and returns the status, the record id of a
// 200 and the body.
func lookup(url string, m testproxy.Module) (int, int64, string, error) {
	resp, err := httpClient.Get(url + "/lookup/" + m.Path + "@" + m.Version)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			return resp.StatusCode, 0, string(body), fmt.Errorf("503 without Retry-After")
		}
		return resp.StatusCode, 0, string(body), nil
	}
	line, _, _ := strings.Cut(string(body), "\n")
	id, err := strconv.ParseInt(line, 10, 64)
	return resp.StatusCode, id, string(body), err
}

// checkSigned checks that a lookup body ends in a tree head signed by
// vkey and covering id.
func checkSigned(t *testing.T, body, vkey string, id int64) {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(body, "go.sum database tree\n")
	if i < 0 {
		t.Fatalf("lookup body without a tree head:\n%s", body)
	}
	n, err := note.Open([]byte(body[i:]), note.VerifierList(v))
	if err != nil {
		t.Fatalf("lookup body's tree head does not verify: %v\n%s", err, body)
	}
	var size int64
	fmt.Sscanf(n.Text, "go.sum database tree\n%d\n", &size)
	if id >= size {
		t.Fatalf("record %d served with a tree head of size %d", id, size)
	}
}

// recorded remembers the acknowledged records: module version → id.
type recorded struct {
	mu  sync.Mutex
	ids map[string]int64
}

func (r *recorded) note(t *testing.T, key string, id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]int64{}
	}
	if old, ok := r.ids[key]; ok && old != id {
		t.Errorf("%s answered with ids %d and %d", key, old, id)
	}
	r.ids[key] = id
}

func (r *recorded) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(len(r.ids))
}

// check asks url for every acknowledged record: same id.
func (r *recorded) check(t *testing.T, url string, mods []testproxy.Module) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range mods {
		want, ok := r.ids[m.Path+"@"+m.Version]
		if !ok {
			continue
		}
		status, id, body, err := lookup(url, m)
		if err != nil || status != http.StatusOK || id != want {
			t.Fatalf("acknowledged %s@%s as record %d; now %d %d %v %s", m.Path, m.Version, want, status, id, err, body)
		}
	}
}

// treeSize returns the size of the tree url serves.
func servedTree(t *testing.T, url string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscanf(get(t, url+"/latest"), "go.sum database tree\n%d\n", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPostgresProcesses runs three `sumd serve` processes on one
// PostgreSQL database, started together on an empty one: concurrent first
// lookups of the same versions through all three, and admin writes, make
// one consistent log with every version recorded once, which `sumd verify
// -full` audits clean.
func TestPostgresProcesses(t *testing.T) {
	e := newPGLog(t, manyModules(240))
	servers := e.serveTogether(t, 3, "-create")
	var wg sync.WaitGroup
	for _, s := range servers {
		if s.gosumdb != e.vkey+" "+s.url {
			t.Fatalf("sumd serve printed GOSUMDB %q, want the key %s", s.gosumdb, e.vkey)
		}
	}
	var rec recorded
	lookups := e.mods[:200]
	for w := range 12 {
		wg.Go(func() {
			// Each version is asked of every process, by different
			// callers, in a different order.
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for _, i := range rng.Perm(len(lookups)) {
				s := servers[(i+w)%3]
				status, id, body, err := lookup(s.url, lookups[i])
				if err != nil || status != http.StatusOK {
					t.Errorf("lookup %s@%s at server %d: %d %v %s", lookups[i].Path, lookups[i].Version, (i+w)%3, status, err, body)
					return
				}
				checkSigned(t, body, e.vkey, id)
				rec.note(t, lookups[i].Path+"@"+lookups[i].Version, id)
			}
		})
	}
	for i, m := range e.mods[200:] {
		wg.Go(func() {
			s := servers[i%3]
			sumd(t, "add", "-server", s.url, "-token-file", e.token, m.Path+"@"+m.Version)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, s := range servers {
		rec.check(t, s.url, e.mods)
		if n := servedTree(t, s.url); n != int64(len(e.mods)) {
			t.Errorf("%s serves a tree of %d records for %d versions", s.url, n, len(e.mods))
		}
	}
	if m := get(t, servers[0].url+"/metrics"); !strings.Contains(m, "sumd_postgres_up 1") || !strings.Contains(m, `sumd_postgres_cached{cache="records"}`) {
		t.Errorf("/metrics lacks sumd_postgres_up 1 or the cache sizes")
	}
	state := filepath.Join(e.dir, "audit")
	for _, s := range servers {
		if out, errOut, code := verify(t, "-url", s.url, "-key", e.vkey, "-state", state, "-full"); code != 0 {
			t.Fatalf("sumd verify -full of %s: exit %d\n%s%s", s.url, code, out, errOut)
		}
	}
}

// TestPostgresKill SIGKILLs sumd processes of one database in the middle of
// commits, again and again, while callers record versions through all of
// them: the others carry on, no acknowledged record is lost, and an
// auditor keeping state across kills sees no fork. Each kill lands under
// load: once some versions were acknowledged since the last one, while the
// victim has lookups in flight, never after the load ended (the kills are
// paced by acknowledgements, not by time, which on a fast machine let the
// load end before the last kills).
func TestPostgresKill(t *testing.T) {
	testenv.SkipShort(t, "kills sumd processes for 20s")
	e := newPGLog(t, manyModules(3000)) // more than the kills need: the load stops after them
	servers := []*sumdServer{e.serve(t, "-create"), e.serve(t), e.serve(t)}
	var mu sync.Mutex // guards servers
	live := func(i int) *sumdServer {
		mu.Lock()
		defer mu.Unlock()
		return servers[i%len(servers)]
	}
	var rec recorded
	var next, failed atomic.Int64
	var inFlight [3]atomic.Int64       // lookups sent to each server, not yet answered
	progress := make(chan struct{}, 1) // a lookup was sent or answered
	nudge := func() {
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1) - 1)
				if i >= len(e.mods) {
					return
				}
				m := e.mods[i]
				// A killed process refuses connections or cuts them: ask
				// the next one, as a load balancer would.
				for try := 0; ; try++ {
					n := &inFlight[(w+try)%3]
					n.Add(1)
					nudge()
					status, id, body, err := lookup(live(w+try).url, m)
					n.Add(-1)
					if err == nil && status == http.StatusOK {
						checkSigned(t, body, e.vkey, id)
						rec.note(t, m.Path+"@"+m.Version, id)
						nudge()
						break
					}
					if try == 20 {
						failed.Add(1)
						t.Errorf("lookup %s@%s failed 20 times: %d %v %s", m.Path, m.Version, status, err, body)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	loadDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(loadDone)
	}()
	// underLoad waits until gap more versions than acked are acknowledged
	// and the victim has lookups in flight; it fails the test if the load
	// ends first, as the kill would then prove nothing.
	underLoad := func(kill, victim int, acked, gap int64) {
		for rec.count() < acked+gap || inFlight[victim].Load() == 0 {
			select {
			case <-progress:
			case <-loadDone:
				t.Fatalf("kill %d: the load ended before it (%d versions acknowledged, %d since the last kill): it would land on an idle server", kill, rec.count(), rec.count()-acked)
			}
		}
	}
	state := filepath.Join(e.dir, "audit")
	rng := rand.New(rand.NewPCG(1, 2))
	var acked int64 // at the last kill
	for kill := range 5 {
		victim := rng.IntN(3)
		underLoad(kill, victim, acked, 30+rng.Int64N(120))
		acked = rec.count()
		s := live(victim)
		if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		s.cmd.Wait()
		survivor := live(victim + 1)
		if out, errOut, code := verify(t, "-url", survivor.url, "-key", e.vkey, "-state", state); code != 0 {
			t.Fatalf("kill %d: sumd verify -state of a survivor: exit %d\n%s%s", kill, code, out, errOut)
		}
		before := rec.count()
		rec.check(t, survivor.url, e.mods)
		t.Logf("kill %d: server %d killed, %d versions acknowledged, survivor serves %d", kill, victim, before, servedTree(t, survivor.url))
		restarted := e.serve(t)
		mu.Lock()
		servers[victim] = restarted
		mu.Unlock()
	}
	close(stop)
	<-loadDone
	if failed.Load() > 0 {
		t.FailNow()
	}
	for i := range 3 {
		rec.check(t, live(i).url, e.mods)
	}
	if out, errOut, code := verify(t, "-url", live(0).url, "-key", e.vkey, "-state", state, "-full"); code != 0 {
		t.Fatalf("sumd verify -full after the kills: exit %d\n%s%s", code, out, errOut)
	}
	if n, acked := servedTree(t, live(0).url), rec.count(); n < acked {
		t.Fatalf("tree of %d records after acknowledging %d", n, acked)
	}
}

// TestPostgresRestart restarts PostgreSQL under load, once stopping it
// cleanly and once as a crash: the sumd processes answer 503 with
// Retry-After meanwhile (and /healthz says so), never a stale or unsigned
// head, and serve and record again once it is back, without a restart.
func TestPostgresRestart(t *testing.T) {
	testenv.SkipShort(t, "restarts PostgreSQL twice under load for 30s")
	e := newPGLog(t, manyModules(600))
	servers := []*sumdServer{e.serve(t, "-create"), e.serve(t)}
	var rec recorded
	var next, unavailable, stale atomic.Int64
	var ok [2]atomic.Int64 // lookups answered 200, by server: each recovers on its own
	var down atomic.Bool   // the database has been down for longer than -max-head-age
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1)-1) % len(e.mods)
				wasDown := down.Load()
				status, id, body, err := lookup(servers[w%2].url, e.mods[i])
				switch {
				case err != nil:
					t.Errorf("lookup: %v", err)
					return
				case status == http.StatusOK:
					ok[w%2].Add(1)
					if wasDown && down.Load() {
						stale.Add(1)
					}
					checkSigned(t, body, e.vkey, id)
					rec.note(t, e.mods[i].Path+"@"+e.mods[i].Version, id)
				case status == http.StatusServiceUnavailable:
					unavailable.Add(1)
					if strings.Contains(body, e.pg.URL("")) || strings.Contains(body, "/tmp/") {
						t.Errorf("503 body shows internal details: %q", body)
					}
					time.Sleep(20 * time.Millisecond)
				default:
					t.Errorf("lookup during a database restart: %d %s", status, body)
					return
				}
			}
		})
	}
	for _, mode := range []string{"fast", "immediate"} {
		time.Sleep(time.Second)
		if err := e.pg.Stop(mode); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond) // past -max-head-age
		down.Store(true)
		time.Sleep(time.Second)
		for _, s := range servers {
			if r := getStatus(t, s.url+"/healthz"); r.status != http.StatusServiceUnavailable {
				t.Errorf("/healthz with the database down (%s): %d %q, want 503", mode, r.status, r.body)
			}
			if r := getStatus(t, s.url+"/latest"); r.status != http.StatusServiceUnavailable {
				t.Errorf("/latest with the database down (%s) for longer than -max-head-age: %d, want 503", mode, r.status)
			}
			// What the documented alert and the image's health check read.
			if out, _, err := sumdRun(t, "status", "-url", s.url); err == nil || !strings.Contains(out, ": UNAVAILABLE\n") ||
				!strings.Contains(out, "the published head was last confirmed against the store") {
				t.Errorf("sumd status with the database down (%s): %v\n%s; want UNAVAILABLE and a failure", mode, err, out)
			}
		}
		down.Store(false)
		if n := stale.Load(); n > 0 {
			t.Errorf("%d lookups answered 200 with the database down for longer than -max-head-age (%s)", n, mode)
		}
		if err := e.pg.Restart(); err != nil {
			t.Fatal(err)
		}
		// Each server answers 503 until it has confirmed its head with the
		// database again (-refresh-interval): wait for both, not for 20
		// successes that one of them may have made alone.
		back, okBefore := time.Now(), [2]int64{ok[0].Load(), ok[1].Load()}
		recovered := func() bool { return ok[0].Load() >= okBefore[0]+10 && ok[1].Load() >= okBefore[1]+10 }
		for deadline := time.Now().Add(30 * time.Second); !recovered(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("30s after the database came back (%s), the servers answered %d and %d lookups", mode, ok[0].Load()-okBefore[0], ok[1].Load()-okBefore[1])
			}
		}
		t.Logf("database stopped (%s) and started: both servers answered 10 lookups %v after it was back", mode, time.Since(back).Round(time.Millisecond))
	}
	close(stop)
	wg.Wait()
	if unavailable.Load() == 0 {
		t.Error("no lookup got 503 while the database was down")
	}
	for _, s := range servers {
		if s.cmd.ProcessState != nil {
			t.Fatalf("a sumd process exited: %v\n%s", s.cmd.ProcessState, s.stderr)
		}
		rec.check(t, s.url, e.mods)
	}
	if out, errOut, code := verify(t, "-url", servers[1].url, "-key", e.vkey, "-full"); code != 0 {
		t.Fatalf("sumd verify -full after the restarts: exit %d\n%s%s", code, out, errOut)
	}
}

// TestPostgresGoCommand: the go command verifies modules through two sumd
// processes of one log alternately, keeping its own tree head (and after
// clearing its module cache, asking one process for tiles of trees the
// other showed it).
func TestPostgresGoCommand(t *testing.T) {
	mods := append(append([]testproxy.Module{}, special...), testproxy.Versions("example.com/many", 40)...)
	e := newPGLog(t, mods)
	a, b := e.serve(t, "-create"), e.serve(t)
	g := testproxy.NewGo(t)
	through := func(s *sumdServer, mods ...testproxy.Module) {
		t.Helper()
		g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+s.gosumdb)
		download(t, g, mods...)
	}
	through(a, special[:2]...)
	through(b, special[2:]...)
	through(a, mods[5:20]...)
	through(b, mods[20:30]...)
	if err := g.CleanModCache(); err != nil {
		t.Fatal(err)
	}
	through(a, mods[0], mods[25], mods[30])
	through(b, append([]testproxy.Module{mods[1]}, mods[31:]...)...)
	latest, err := os.ReadFile(filepath.Join(g.GOPATH, "pkg", "sumdb", e2eName, "latest"))
	if err != nil || !bytes.Contains(latest, []byte(fmt.Sprintf("go.sum database tree\n%d\n", len(mods)))) {
		t.Fatalf("the go command's latest tree: %q, %v; want %d records", latest, err, len(mods))
	}
}

// TestPostgresCopy copies a log from bbolt to PostgreSQL, serves it there
// to a go command that knew it from bbolt, grows it, and copies it back
// into a new bbolt file that serves and audits clean; a copy into another
// log is refused.
func TestPostgresCopy(t *testing.T) {
	pg := pgtest.Shared(t)
	e := newE2ELog(t) // 305 records in bbolt
	g := testproxy.NewGo(t)
	s := e.serve(t)
	g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+s.gosumdb)
	download(t, g, special[0], e.many[10])
	s.stop()

	db := pg.NewDatabase(t)
	out := sumd(t, "copy", "-from", e.db, "-to", db)
	if !strings.Contains(out, "copied "+e2eName+": 305 records, signed head verified in full") {
		t.Fatalf("sumd copy printed %q", out)
	}
	p := startServer(t, "-db", db, "-key", e.key)
	g.Env = append(g.Env, "GOSUMDB="+p.gosumdb)
	if err := g.CleanModCache(); err != nil {
		t.Fatal(err)
	}
	download(t, g, special[1], e.many[299])
	e.addGoSumTo(t, db, e.many[300:])
	download(t, g, e.many[320])
	p.stop()

	back := filepath.Join(e.dir, "back.db")
	out = sumd(t, "copy", "-from", db, "-to", back)
	if !strings.Contains(out, "copied "+e2eName+": 355 records") {
		t.Fatalf("sumd copy back printed %q", out)
	}
	s = startServer(t, "-db", back, "-key", e.key)
	g.Env = append(g.Env, "GOSUMDB="+s.gosumdb)
	download(t, g, e.many[349])
	if out, errOut, code := verify(t, "-url", s.url, "-key", e.vkey, "-full"); code != 0 {
		t.Fatalf("sumd verify -full of the copy: exit %d\n%s%s", code, out, errOut)
	}

	s.stop()

	// Another log in the destination: refused, with a hint.
	other := newPGLog(t, nil)
	sumd(t, "add", "-db", other.db, "-key", other.key, "-create", "-gosum", writeFile(t, filepath.Join(e.dir, "one.sum"), goSumFile(t, e.proxyDir, special[:1])))
	_, errOut, err := sumdRun(t, "copy", "-from", back, "-to", other.db)
	if err == nil || !strings.Contains(errOut, "destination holds another log") || !strings.Contains(errOut, "hint: copy into an empty database") {
		t.Fatalf("sumd copy into another log: %v\n%s", err, errOut)
	}
}

// addGoSumTo records mods in database db through `sumd add -gosum`.
func (e *e2eLog) addGoSumTo(t *testing.T, db string, mods []testproxy.Module) {
	file := writeFile(t, filepath.Join(e.dir, fmt.Sprintf("to-%d.sum", len(mods))), goSumFile(t, e.proxyDir, mods))
	sumd(t, "add", "-db", db, "-key", e.key, "-gosum", file)
}

// TestPostgresRestoreLostHead follows docs/mirrors.md's recovery of a
// PostgreSQL database that lost a published head (a failover to an
// asynchronous standby): restore a mirror into a file, copy it in, and
// where the copy refuses the database as another log, empty its log's
// tables (sumd_aux, holding the record of the lost head, stays) and copy
// again. The record was all that kept the restore from a mirror behind
// the lost head, and sumd copy ignored it: the copied log opened and
// signed a fork of the lost tree. Both copies are refused, leaving the
// database as it was; a mirror holding the lost tree restores it.
func TestPostgresRestoreLostHead(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	e := newE2ELog(t) // 305 records in bbolt
	s := e.serve(t)
	behind := filepath.Join(e.dir, "behind.db")
	mirrorOf(t, behind, s.url, e.vkey)
	s.stop()
	db := pg.NewDatabase(t)
	sumd(t, "copy", "-from", e.db, "-to", db)
	e.addGoSumTo(t, db, e.many[300:])
	p := startServer(t, "-db", db, "-key", e.key)
	ahead := filepath.Join(e.dir, "ahead.db")
	mirrorOf(t, ahead, p.url, e.vkey)
	p.stop()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var lost []byte
	if err := conn.QueryRow(ctx, `SELECT head FROM sumd_log`).Scan(&lost); err != nil {
		t.Fatal(err)
	}
	// The failover: the database as the standby had it, at tree 305, and
	// the record the process that published tree 355 left.
	truncate := func() {
		t.Helper()
		if _, err := conn.Exec(ctx, `TRUNCATE sumd_log, sumd_records, sumd_index, sumd_tiles`); err != nil {
			t.Fatal(err)
		}
	}
	truncate()
	sumd(t, "copy", "-from", e.db, "-to", db)
	if _, err := conn.Exec(ctx, `INSERT INTO sumd_aux (key, value) VALUES ($1, $2)`, itlog.AuxLostHead, lost); err != nil {
		t.Fatal(err)
	}

	restored := filepath.Join(e.dir, "restored.db")
	sumd(t, "restore", "-db", restored, "-key", e.key, "-from", behind)
	refused := func(step string) {
		t.Helper()
		_, errOut, err := sumdRun(t, "copy", "-from", restored, "-to", db)
		if err == nil || !strings.Contains(errOut, "does not extend the tree of 355 records") || !strings.Contains(errOut, "hint: ") {
			t.Fatalf("%s: sumd copy of a restore from a mirror at tree 305 into a database that lost tree 355: %v\n%s", step, err, errOut)
		}
	}
	refused("into the database")
	truncate()
	refused("into its emptied tables")
	var logs int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sumd_log`).Scan(&logs); err != nil || logs != 0 {
		t.Fatalf("the refused copy left %d logs (%v), want none", logs, err)
	}

	restored = filepath.Join(e.dir, "restored-ahead.db")
	sumd(t, "restore", "-db", restored, "-key", e.key, "-from", ahead)
	sumd(t, "copy", "-from", restored, "-to", db)
	p = startServer(t, "-db", db, "-key", e.key)
	if n := servedTree(t, p.url); n != 355 {
		t.Fatalf("the restored database serves tree %d, want 355", n)
	}
	p.stop()
}
