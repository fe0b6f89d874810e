package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	modzip "golang.org/x/mod/zip"

	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testlog"
)

// TestCrashLoop runs sumd serve (the binary) with an upstream proxy and
// concurrent clients making first lookups and admin uploads, SIGKILLs it at
// random moments, and restarts it. After each restart:
//
//   - every tree head a client saw before the kill is in the new tree (the
//     new head is no smaller, and its tree hashes to the old root at the old
//     size, proved from the server's own tiles): nothing a reader saw was
//     lost or forked;
//   - sumd verify -state -full accepts the log, consistent with every head
//     it verified in earlier rounds;
//   - every record acknowledged (a 200) since the last round is found by a
//     lookup with the same id and hashes, which are the ones the module's
//     content hashes to. Older ones are bound by the consistency above, and
//     all are looked up again at the end.
//
// CRASH_KILLS (default 10) sets the number of kills, CRASH_DURATION (a Go
// duration, default none) a time limit; make crash runs a long loop.
func TestCrashLoop(t *testing.T) {
	testenv.SkipShort(t, "restarts sumd serve many times")
	kills, err := strconv.Atoi(cmpEnv("CRASH_KILLS", "10"))
	if err != nil || kills < 1 {
		t.Fatalf("CRASH_KILLS=%q: want a positive number", os.Getenv("CRASH_KILLS"))
	}
	limit, err := time.ParseDuration(cmpEnv("CRASH_DURATION", "0s"))
	if err != nil {
		t.Fatalf("CRASH_DURATION: %v", err)
	}
	seed, _ := strconv.ParseUint(cmpEnv("CRASH_SEED", strconv.FormatInt(time.Now().UnixNano(), 10)), 10, 64)
	t.Logf("CRASH_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	r := newCrashRig(t)
	start := time.Now()
	var done, startKills int
	for done < kills && (limit == 0 || time.Since(start) < limit) {
		if rng.IntN(10) == 0 {
			// Killed while it opens the log, before it serves.
			r.killDuringStart(time.Duration(rng.IntN(300)) * time.Millisecond)
			done++
			startKills++
			continue
		}
		s := r.start()
		r.check(s)
		r.load(s, time.Duration(rng.IntN(800))*time.Millisecond)
		done++
		if t.Failed() {
			break
		}
		if done%100 == 0 {
			t.Logf("%d kills in %s, %d records acknowledged", done, time.Since(start).Round(time.Second), len(r.acked))
		}
	}
	s := r.start()
	r.check(s)
	r.checkAll(s)
	s.stop(t)
	t.Logf("%d kills (%d while starting) in %s: %d records acknowledged (%d lookups, %d uploads), %d client-seen heads proved in the restarted log, %d sumd verify runs, %d temporary files left by kills and removed at start; forks: %d, lost records: %d",
		done, startKills, time.Since(start).Round(time.Second), len(r.acked), r.lookups.Load(), r.uploads.Load(),
		r.headsChecked, r.verifies, r.orphans, r.forks, r.lost)
}

func cmpEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// ack is an acknowledged record: its id and text.
type ack struct {
	id   int64
	text string
}

// A crashRig is the state of the loop: the files of the log, the upstream
// proxy, and what clients were told.
type crashRig struct {
	t                      *testing.T
	dir, db, key, vkeyFile string
	state, token, zips     string
	verifier               note.Verifier
	proxy                  *genProxy
	created                bool
	next                   atomic.Int64 // the next fresh version number
	lookups, uploads       atomic.Int64

	mu    sync.Mutex
	acked map[string]ack   // by module@version
	fresh []string         // acked since the last check
	heads map[int64]string // tree size -> root hash, seen since the last check

	headsChecked, verifies, forks, lost, orphans int
}

func newCrashRig(t *testing.T) *crashRig {
	dir := t.TempDir()
	r := &crashRig{t: t, dir: dir, db: filepath.Join(dir, "sumd.db"), state: filepath.Join(dir, "audit"),
		zips: filepath.Join(dir, "zips"), acked: map[string]ack{}, heads: map[int64]string{}}
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	r.key, r.vkeyFile = filepath.Join(dir, "keys", e2eName+".key"), filepath.Join(dir, "keys", e2eName+".vkey")
	var err error
	if r.verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	r.token = writeSecret(t, filepath.Join(dir, "admin.token"), "crash-token-0123456789abcdef\n")
	if err := os.Mkdir(r.zips, 0o700); err != nil {
		t.Fatal(err)
	}
	r.proxy = newGenProxy(t, r.zips)
	return r
}

// A crashServer is one run of sumd serve.
type crashServer struct {
	cmd    *exec.Cmd
	url    string
	stderr *testlog.Buffer
}

func (r *crashRig) command() (*exec.Cmd, *testlog.Buffer) {
	args := []string{"serve", "-listen", "127.0.0.1:0", "-db", r.db, "-key", r.key, "-log-level", "warn",
		"-upstream", r.proxy.srv.URL, "-admin-token-file", r.token}
	if !r.created {
		args = append(args, "-create")
	}
	cmd := sumdCommand(r.t, args...)
	stderr := new(testlog.Buffer)
	cmd.Stderr = stderr
	return cmd, stderr
}

// start starts sumd serve and waits until it serves. It counts the
// temporary files the last kill left, which the start must remove.
func (r *crashRig) start() *crashServer {
	r.t.Helper()
	if left, err := os.ReadDir(r.db + ".tmp"); err == nil {
		r.orphans += len(left)
	}
	cmd, stderr := r.command()
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	// Whatever ends the test, the process does not outlive it.
	r.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := startLine(cmd, out)
	m := gosumdbLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		cmd.Process.Kill()
		cmd.Wait()
		r.t.Fatalf("sumd serve printed %q (%v); stderr:\n%s", line, err, stderr)
	}
	r.created = true
	return &crashServer{cmd: cmd, url: m[2], stderr: stderr}
}

// killDuringStart starts sumd serve and kills it after d, serving or not.
func (r *crashRig) killDuringStart(d time.Duration) {
	cmd, _ := r.command()
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	time.Sleep(d)
	cmd.Process.Kill()
	cmd.Wait()
}

// stop ends a server with SIGTERM, which must be a clean exit.
func (s *crashServer) stop(t testing.TB) {
	t.Helper()
	stopCmd(t, s.cmd, syscall.SIGTERM, s.stderr)
}

// load runs clients against s until it is SIGKILLed, after d.
func (r *crashRig) load(s *crashServer, d time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { r.client(ctx, s, i) })
	}
	time.Sleep(d)
	s.cmd.Process.Kill()
	s.cmd.Wait()
	cancel()
	wg.Wait()
}

// client makes requests until ctx ends: mostly first lookups, some uploads
// and some lookups of what is recorded already.
func (r *crashRig) client(ctx context.Context, s *crashServer, i int) {
	hc := &http.Client{Timeout: 10 * time.Second}
	rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		switch n := rng.IntN(10); {
		case n < 6:
			r.lookup(ctx, hc, s, upstreamVersion(r.next.Add(1)))
		case n < 9:
			r.upload(ctx, hc, s, uploadVersion(r.next.Add(1)))
		default:
			if m, ok := r.someAcked(rng); ok {
				r.lookup(ctx, hc, s, m)
			}
		}
	}
}

func upstreamVersion(n int64) module.Version {
	return module.Version{Path: fmt.Sprintf("example.com/crash/m%d", n%7), Version: fmt.Sprintf("v1.0.%d", n)}
}

func uploadVersion(n int64) module.Version {
	return module.Version{Path: fmt.Sprintf("example.com/crash/u%d", n%5), Version: fmt.Sprintf("v1.0.%d", n)}
}

// lookup looks m up and, on a 200, records the answer.
func (r *crashRig) lookup(ctx context.Context, hc *http.Client, s *crashServer, m module.Version) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/lookup/"+m.Path+"@"+m.Version, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return // killed meanwhile
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return
	case resp.StatusCode != http.StatusOK:
		if resp.StatusCode < 500 {
			r.t.Errorf("lookup %s: %d %s", m, resp.StatusCode, body)
		}
		return
	}
	id, text, msg, err := splitLookup(body)
	var head tlog.Tree
	if err == nil {
		head, err = r.openHead(msg)
	}
	if err != nil {
		r.t.Errorf("lookup %s: %v\n%s", m, err, body)
		return
	}
	r.lookups.Add(1)
	r.sawHead(head)
	r.acknowledge(m, ack{id, text})
}

// upload uploads m's zip through the admin API and records the answer.
func (r *crashRig) upload(ctx context.Context, hc *http.Client, s *crashServer, m module.Version) {
	zip := filepath.Join(r.zips, m.Path[len("example.com/crash/"):]+"@"+m.Version+".zip")
	if err := os.WriteFile(zip, r.proxy.zip(m), 0o600); err != nil {
		r.t.Error(err)
		return
	}
	defer os.Remove(zip)
	c := &admin.Client{URL: s.url, Token: "crash-token-0123456789abcdef", HTTPClient: hc}
	res, err := c.Upload(ctx, m, zip, "")
	var ae *admin.Error
	switch {
	case errors.As(err, &ae) && ae.Status < 500:
		r.t.Errorf("upload %s: %v", m, err)
		return
	case err != nil:
		return
	}
	r.uploads.Add(1)
	r.acknowledge(m, ack{res.ID, res.Record})
}

// acknowledge remembers a 200, which must agree with every earlier one for
// the version and with the hashes of the version's content.
func (r *crashRig) acknowledge(m module.Version, a ack) {
	want := r.proxy.record(r.t, m)
	r.mu.Lock()
	defer r.mu.Unlock()
	key := m.String()
	if old, ok := r.acked[key]; ok {
		if old != a {
			r.forks++
			r.t.Errorf("%s acknowledged as %d %q, then as %d %q", key, old.id, old.text, a.id, a.text)
		}
		return
	}
	if a.text != want {
		r.t.Errorf("%s recorded as %q, but its content hashes to %q", key, a.text, want)
	}
	r.acked[key] = a
	r.fresh = append(r.fresh, key)
}

func (r *crashRig) someAcked(rng *rand.Rand) (module.Version, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fresh) == 0 {
		return module.Version{}, false
	}
	path, version, _ := strings.Cut(r.fresh[rng.IntN(len(r.fresh))], "@")
	return module.Version{Path: path, Version: version}, true
}

// sawHead remembers a head a client saw; two roots for one size is a fork.
func (r *crashRig) sawHead(tree tlog.Tree) {
	r.mu.Lock()
	defer r.mu.Unlock()
	root := tree.Hash.String()
	if old, ok := r.heads[tree.N]; ok && old != root {
		r.forks++
		r.t.Errorf("two tree heads of size %d: %s and %s", tree.N, old, root)
	}
	r.heads[tree.N] = root
}

// splitLookup parses a lookup answer: id, record, signed head.
func splitLookup(body []byte) (id int64, record string, head []byte, err error) {
	idLine, rest, _ := strings.Cut(string(body), "\n")
	if id, err = strconv.ParseInt(idLine, 10, 64); err != nil {
		return 0, "", nil, fmt.Errorf("bad id line %q", idLine)
	}
	lines := strings.SplitAfterN(rest, "\n", 3)
	if len(lines) != 3 {
		return 0, "", nil, errors.New("short answer")
	}
	// The record ends in a newline, and a blank line comes before the head.
	return id, lines[0] + lines[1], []byte(strings.TrimPrefix(lines[2], "\n")), nil
}

// check runs the checks of a restart against s (see TestCrashLoop).
func (r *crashRig) check(s *crashServer) {
	r.t.Helper()
	tree := r.latest(s)
	if left := tmpKinds(r.t, r.db+".tmp"); len(left) != 0 { // but its lock
		r.t.Errorf("after the restart the temporary directory holds %v, want nothing", left)
	}
	r.mu.Lock()
	heads, fresh := r.heads, r.fresh
	r.heads, r.fresh = map[int64]string{}, nil
	r.mu.Unlock()

	tiles := tlog.TileHashReader(tree, &httpTiles{url: s.url})
	for n, root := range heads {
		r.headsChecked++
		if n > tree.N {
			r.lost++
			r.t.Errorf("a client saw a tree of %d records; after the restart the log has %d", n, tree.N)
			continue
		}
		h, err := tlog.TreeHash(n, tiles)
		if err != nil || h.String() != root {
			r.forks++
			r.t.Errorf("a client saw tree %d with root %s; the restarted log's tree %d has %s (%v)", n, root, n, h, err)
		}
	}
	out, errOut, err := sumdRun(r.t, "verify", "-url", s.url, "-key", r.vkeyFile, "-state", r.state, "-full")
	r.verifies++
	if err != nil {
		r.forks++
		r.t.Errorf("sumd verify after a restart: %v\n%s%s\nserver log:\n%s", err, out, errOut, s.stderr)
	}
	r.lookUp(s, fresh)
}

// checkAll looks every acknowledged record up.
func (r *crashRig) checkAll(s *crashServer) {
	r.mu.Lock()
	var all []string
	for key := range r.acked {
		all = append(all, key)
	}
	r.mu.Unlock()
	r.lookUp(s, all)
}

// lookUp checks that the records of keys are there as acknowledged.
func (r *crashRig) lookUp(s *crashServer, keys []string) {
	r.t.Helper()
	for _, key := range keys {
		r.mu.Lock()
		want := r.acked[key]
		r.mu.Unlock()
		path, version, _ := strings.Cut(key, "@")
		resp, err := http.Get(s.url + "/lookup/" + path + "@" + version)
		if err != nil {
			r.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id, text, _, err := splitLookup(body)
		if resp.StatusCode != http.StatusOK || err != nil || id != want.id || text != want.text {
			r.lost++
			r.t.Errorf("%s was acknowledged as record %d %q; after the restart: %d %q", key, want.id, want.text, resp.StatusCode, body)
		}
	}
}

// latest returns s's signed tree, verified.
func (r *crashRig) latest(s *crashServer) tlog.Tree {
	r.t.Helper()
	resp, err := http.Get(s.url + "/latest")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	tree, err := r.openHead(msg)
	if err != nil {
		r.t.Fatalf("/latest: %v\n%s", err, msg)
	}
	return tree
}

func (r *crashRig) openHead(msg []byte) (tlog.Tree, error) {
	n, err := note.Open(msg, note.VerifierList(r.verifier))
	if err != nil {
		return tlog.Tree{}, err
	}
	return tlog.ParseTree([]byte(n.Text))
}

// httpTiles reads hash tiles from a server; tlog.TileHashReader checks
// them against a signed tree.
type httpTiles struct{ url string }

func (h *httpTiles) Height() int { return 8 }

func (h *httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		resp, err := http.Get(h.url + "/" + t.Path())
		if err != nil {
			return nil, err
		}
		out[i], err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d %v", t.Path(), resp.StatusCode, err)
		}
	}
	return out, nil
}

func (h *httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// A genProxy is a module proxy that makes up every version it is asked
// for, always the same way: it never runs out of versions to look up.
type genProxy struct {
	srv *httptest.Server
	tmp string // where record hashes zips

	mu   sync.Mutex
	zips map[module.Version][]byte
	recs map[module.Version]string
}

func newGenProxy(t *testing.T, tmp string) *genProxy {
	p := &genProxy{tmp: tmp, zips: map[module.Version][]byte{}, recs: map[module.Version]string{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *genProxy) serve(w http.ResponseWriter, r *http.Request) {
	path, file, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/@v/")
	ext := filepath.Ext(file)
	m := module.Version{Path: path, Version: strings.TrimSuffix(file, ext)}
	if !ok || !strings.HasPrefix(path, "example.com/crash/") || module.Check(m.Path, m.Version) != nil {
		http.NotFound(w, r)
		return
	}
	switch ext {
	case ".mod":
		io.WriteString(w, goModOf(m))
	case ".zip":
		w.Write(p.zip(m))
	case ".info":
		fmt.Fprintf(w, `{"Version":%q,"Time":"2024-01-01T00:00:00Z"}`, m.Version)
	default:
		http.NotFound(w, r)
	}
}

func goModOf(m module.Version) string { return "module " + m.Path + "\n\ngo 1.21\n" }

// zip returns m's module zip, made once.
func (p *genProxy) zip(m module.Version) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if z, ok := p.zips[m]; ok {
		return z
	}
	files := []modzip.File{
		crashFile{"go.mod", goModOf(m)},
		crashFile{"v.go", "package v\n\nconst V = \"" + m.String() + "\"\n"},
	}
	var buf bytes.Buffer
	if err := modzip.Create(&buf, m, files); err != nil {
		panic(err)
	}
	p.zips[m] = buf.Bytes()
	return buf.Bytes()
}

// record returns the record sumd must hold for m.
func (p *genProxy) record(t *testing.T, m module.Version) string {
	p.mu.Lock()
	rec, ok := p.recs[m]
	p.mu.Unlock()
	if ok {
		return rec
	}
	f, err := os.CreateTemp(p.tmp, "record-*.zip")
	if err != nil {
		t.Error(err)
		return ""
	}
	defer os.Remove(f.Name())
	f.Write(p.zip(m))
	f.Close()
	sums, err := modhash.HashZip(m, f.Name(), []byte(goModOf(m)))
	if err != nil {
		t.Error(err)
		return ""
	}
	rec = string(gosum.Record{Path: m.Path, Version: m.Version, Hash: sums.Hash, GoMod: sums.GoMod}.Text())
	p.mu.Lock()
	p.recs[m] = rec
	p.mu.Unlock()
	return rec
}

// crashFile is an in-memory modzip.File.
type crashFile struct{ name, data string }

func (f crashFile) Path() string                 { return f.name }
func (f crashFile) Lstat() (os.FileInfo, error)  { return crashFileInfo(f), nil }
func (f crashFile) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(f.data)), nil }

type crashFileInfo crashFile

func (f crashFileInfo) Name() string       { return f.name }
func (f crashFileInfo) Size() int64        { return int64(len(f.data)) }
func (f crashFileInfo) Mode() os.FileMode  { return 0o644 }
func (f crashFileInfo) ModTime() time.Time { return time.Time{} }
func (f crashFileInfo) IsDir() bool        { return false }
func (f crashFileInfo) Sys() any           { return nil }
