package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/testproxy"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestMirrorForwardedLookup: a replica of a primary that records on first
// lookup forwards the lookup of a version neither holds; the primary
// records it, the replica verifies and stores the answer and the go
// command accepts it; the replica then serves it with the primary stopped.
func TestMirrorForwardedLookup(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	proxyURL, err := testproxy.Build(proxyDir, special)
	if err != nil {
		t.Fatal(err)
	}
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	key := filepath.Join(dir, "keys", e2eName+".key")
	p := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", key, "-upstream", proxyURL)
	db := filepath.Join(dir, "replica.db")
	mirrorOf(t, db, p.url, vkey)
	r := startServer(t, "-mirror-only", "-mirror", db, "-mirror-interval", "1h")
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+proxyURL, "GOSUMDB="+r.gosumdb)
	download(t, g, special[0], special[1])
	if got := get(t, p.url+"/lookup/example.com/plain@v1.0.0"); !strings.HasPrefix(got, "0\nexample.com/plain v1.0.0 h1:") {
		t.Errorf("the primary did not record the forwarded lookup: %q", got)
	}
	if got := get(t, r.url+"/latest"); !strings.HasPrefix(got, "go.sum database tree\n2\n") {
		t.Errorf("the replica did not store what it proved: %q", got)
	}
	p.stop()
	fresh := testproxy.NewGo(t)
	fresh.Env = append(fresh.Env, "GOPROXY="+proxyURL, "GOSUMDB="+r.gosumdb)
	download(t, fresh, special[1])
}

// TestRestoreGoCommand: a primary's database is lost and replaced by an
// old backup. Started as it is, its next head forks from what clients saw,
// and the go command says so; sumd restore rolls it forward from a mirror,
// after which the primary's next head extends the newest one any client
// saw, and the go command accepts it.
func TestRestoreGoCommand(t *testing.T) {
	e := newE2ELog(t)
	token := writeSecret(t, filepath.Join(e.dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	p := startServer(t, "-db", e.db, "-key", e.key, "-admin-token-file", token)
	old := filepath.Join(e.dir, "old.db")
	if out := sumd(t, "backup", "-server", p.url, "-token-file", token, "-o", old); !strings.Contains(out, "tree 305") || !strings.Contains(out, "verified in full") {
		t.Fatalf("backup printed %q", out)
	}
	p.stop()
	e.addGoSum(t, e.many[300:])
	p = e.serve(t)
	mdb := filepath.Join(e.dir, "mirror.db")
	mirrorOf(t, mdb, p.url, e.vkey)
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+p.gosumdb)
	download(t, g, e.many[340]) // the client has seen the tree of 355
	p.stop()

	// The database is lost; the old backup takes its place.
	after := testproxy.Versions("example.com/after", 2)
	if _, err := testproxy.Build(e.proxyDir, after); err != nil {
		t.Fatal(err)
	}
	copyFile(t, old, e.db)
	addZip := func(m testproxy.Module) {
		mv := module.Version{Path: m.Path, Version: m.Version}
		sumd(t, "add", "-db", e.db, "-key", e.key, m.Path+"@"+m.Version, testproxy.ZipPath(e.proxyDir, mv))
	}
	addZip(after[0])
	p = e.serve(t)
	g.Env = append(g.Env, "GOSUMDB="+p.gosumdb)
	out, err := g.Run("mod", "download", args(after[0])[0])
	if err == nil || !strings.Contains(out, "SECURITY ERROR") {
		t.Fatalf("a primary restarted from an old backup: go mod download %v\n%s\nwant the go command to detect the fork", err, out)
	}
	p.stop()

	copyFile(t, old, e.db)
	out = sumd(t, "restore", "-db", e.db, "-key", e.key, "-from", mdb)
	if !strings.Contains(out, "restored "+e2eName+": tree 355 (was 305)") || !strings.Contains(out, "the previous database is kept as") {
		t.Fatalf("restore printed %q", out)
	}
	addZip(after[1])
	p = e.serve(t)
	g.Env = append(g.Env, "GOSUMDB="+p.gosumdb)
	download(t, g, after[1])
	download(t, g, e.many[0])
	p.stop()

	// From a mirror's URL: restore mirrors it beside the database first,
	// and says that it keeps that mirror, and why.
	m := startServer(t, "-mirror-only", "-mirror", mdb, "-mirror-interval", "1h")
	fresh := filepath.Join(e.dir, "fresh.db")
	out = sumd(t, "restore", "-db", fresh, "-key", e.key, "-from", m.url)
	if !strings.Contains(out, "restored "+e2eName+": tree 355 (was 0)") || !strings.Contains(out, "the mirror restored from is kept as "+fresh+".restore-mirror") {
		t.Errorf("restore -from URL printed %q", out)
	}
	if _, err := os.Stat(fresh + ".restore-mirror"); err != nil {
		t.Errorf("the mirror restore said it kept: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}

// TestBackupCLI backs a server up while admin fetches append to it: the
// copy verifies in full and holds every record acknowledged before the
// backup began. A stopped server's file is copied with -db (refused while
// it is served).
func TestBackupCLI(t *testing.T) {
	e := newE2ELog(t)
	token := writeSecret(t, filepath.Join(e.dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	p := startServer(t, "-db", e.db, "-key", e.key, "-admin-token-file", token, "-upstream", e.proxyURL)
	c := &admin.Client{URL: p.url, Token: "0123456789abcdef0123456789abcdef"}
	ctx := context.Background()
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 5 {
		wg.Go(func() {
			for i := w; i < 50; i += 5 {
				m := e.many[300+i]
				if _, err := c.Fetch(ctx, module.Version{Path: m.Path, Version: m.Version}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, m.Path+"@"+m.Version)
				if len(acked) == 10 {
					close(start)
				}
				mu.Unlock()
			}
		})
	}
	<-start
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	out := filepath.Join(e.dir, "online.db")
	sumd(t, "backup", "-server", p.url, "-token-file", token, "-o", out)
	wg.Wait()
	if fi, err := os.Stat(out); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file has mode %v; want 0600, as the database's (it holds the same private records)", fi.Mode().Perm())
	}
	missing := filepath.Join(e.dir, "no-such-dir", "b.db")
	if _, errOut, err := sumdRun(t, "backup", "-server", p.url, "-token-file", token, "-o", missing); statusOf(err) != 1 || !strings.Contains(errOut, "existing directory") {
		t.Errorf("backup -o into a missing directory: exit %d\n%s\nwant 1 and a hint about -o's directory", statusOf(err), errOut)
	}
	if got := sumd(t, "backup", "verify", "-vkey", e.vkey, out); !strings.Contains(got, "every tile and record verified") {
		t.Errorf("backup verify printed %q", got)
	}
	// A wrong -vkey is not a damaged copy: the hint says which is wrong.
	_, otherVKey, _ := itlog.GenerateKey(e2eName)
	if _, errOut, err := sumdRun(t, "backup", "verify", "-vkey", otherVKey, out); statusOf(err) != 1 || !strings.Contains(errOut, "check -vkey") || strings.Contains(errOut, "take another backup") {
		t.Errorf("backup verify with another key: exit %d\n%s\nwant 1 and a hint to check -vkey", statusOf(err), errOut)
	}
	// A copy cut short (an interrupted cp) is reported, not a crash:
	// bbolt would read its missing pages through the mapping, a SIGBUS.
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(e.dir, "cut.db")
	if err := os.WriteFile(cut, data[:16384], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := sumdRun(t, "backup", "verify", "-vkey", e.vkey, cut); statusOf(err) != 1 || !strings.Contains(errOut, "truncated or damaged") || !strings.Contains(errOut, "take another backup") {
		t.Errorf("backup verify of a truncated copy: exit %d\n%s\nwant 1: truncated or damaged, take another backup", statusOf(err), errOut)
	}
	s, err := itlog.OpenBolt(out, itlog.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, tree, err := itlog.CheckStore(ctx, s, []string{e.vkey})
	ids, lerr := s.Lookup(ctx, before)
	s.Close()
	if err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	for i, id := range ids {
		if id < 0 || id >= tree.N {
			t.Errorf("%s, acknowledged before the backup began, is not in it", before[i])
		}
	}
	t.Logf("backup of a tree of %d records during appends; %d acknowledged before it began", tree.N, len(before))

	_, errOut, err := sumdRun(t, "backup", "-db", e.db, "-o", filepath.Join(e.dir, "offline.db"))
	if statusOf(err) != 1 || !strings.Contains(errOut, "back it up through it with -server") {
		t.Errorf("backup -db of a served database: exit %d\n%s", statusOf(err), errOut)
	}
	p.stop()
	if got := sumd(t, "backup", "-db", e.db, "-o", filepath.Join(e.dir, "offline.db")); !strings.Contains(got, "tree 355") {
		t.Errorf("backup -db printed %q", got)
	}
	damaged := filepath.Join(e.dir, "damaged.db")
	data, _ = os.ReadFile(out)
	rec := []byte("example.com/many v1.0.42 h1:") // a record, as stored (in every page that holds it)
	if bytes.Count(data, rec) == 0 {
		t.Fatal("no record found in the backup file")
	}
	for i := 0; ; {
		j := bytes.Index(data[i:], rec)
		if j < 0 {
			break
		}
		i += j + len(rec)
		data[i] ^= 'A' ^ 'B'
	}
	writeFile(t, damaged, data)
	if _, errOut, err := sumdRun(t, "backup", "verify", damaged); statusOf(err) != 1 || !strings.Contains(errOut, "does not match") {
		t.Errorf("backup verify of a damaged copy: exit %d\n%s", statusOf(err), errOut)
	}
}

// TestRestoreLostHead: sumd restore into a database that records a head a
// process published and lost (itlog.AuxLostHead) checked only that the
// database's own head is a prefix of the mirror's, so a mirror behind the
// lost head replaced the database, and the record with it: the restored
// log signed a fork of the lost tree. It is refused, and the database
// kept; a mirror that holds the lost tree restores it.
func TestRestoreLostHead(t *testing.T) {
	e := newE2ELog(t) // 305 records
	s := e.serve(t)
	behind := filepath.Join(e.dir, "behind.db")
	mirrorOf(t, behind, s.url, e.vkey)
	s.stop()
	old := filepath.Join(e.dir, "old.db")
	copyFile(t, e.db, old)
	e.addGoSum(t, e.many[300:])
	s = e.serve(t)
	ahead := filepath.Join(e.dir, "ahead.db")
	mirrorOf(t, ahead, s.url, e.vkey)
	s.stop()
	lost := storedHead(t, e.db)
	// The database rolled back to tree 305, with the record of tree 355.
	copyFile(t, old, e.db)
	b, err := itlog.OpenBolt(e.db, itlog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetAux(context.Background(), itlog.AuxLostHead, lost); err != nil {
		t.Fatal(err)
	}
	b.Close()

	_, errOut, err := sumdRun(t, "restore", "-db", e.db, "-key", e.key, "-from", behind)
	if err == nil || !strings.Contains(errOut, "does not extend the tree of 355 records") || !strings.Contains(errOut, "hint: ") {
		t.Fatalf("sumd restore from a mirror at tree 305 of a database that lost tree 355: %v\n%s", err, errOut)
	}
	if got := storedHead(t, e.db); !bytes.Equal(got, storedHead(t, old)) {
		t.Fatalf("the refused restore changed the database's head to %q", got)
	}
	if out := sumd(t, "restore", "-db", e.db, "-key", e.key, "-from", ahead); !strings.Contains(out, "tree 355 (was 305)") {
		t.Fatalf("restore from a mirror holding the lost tree printed %q", out)
	}
}

// TestBackupStdout: sumd backup -o - wrote a file named "-" in the working
// directory (as mirror export did before it streamed, TestBundleStream).
// A backup is verified before it gets its name, which a stream to
// standard output has not: - is refused, as a mistake in the options,
// saying how to send a backup on; nothing is written.
func TestBackupStdout(t *testing.T) {
	e := newE2ELog(t)
	dir := t.TempDir()
	cmd := sumdCommand(t, "backup", "-db", e.db, "-o", "-")
	var stdout, stderr bytes.Buffer
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
	err := cmd.Run()
	if statusOf(err) != 2 || !strings.Contains(stderr.String(), "-o -") || !strings.Contains(stderr.String(), "hint: ") || stdout.Len() > 0 {
		t.Errorf("sumd backup -o -: exit %d, %d bytes on standard output\n%s\nwant 2, nothing written and a hint", statusOf(err), stdout.Len(), stderr.String())
	}
	if names, _ := os.ReadDir(dir); len(names) > 0 {
		t.Errorf("sumd backup -o - wrote %s in the working directory", names[0].Name())
	}
}

// TestRestoreRefusesOlderMirror: sumd restore over a database from a
// mirror behind it (it would roll the log back) or forking from it (a
// SECURITY ERROR) exits non-zero, says why and that nothing was changed,
// and leaves the database byte for byte as it was, with nothing beside it.
func TestRestoreRefusesOlderMirror(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 300)
	behind := filepath.Join(dir, "behind.db")
	sumd(t, "mirror", "import", "-mirror", behind, "-origin-key", vkey, exportPrimary(t, db, key, filepath.Join(dir, "300.bundle")))
	var buf bytes.Buffer
	for _, r := range syntheticRecords(300, 50) {
		buf.Write(r.Text())
	}
	sumd(t, "add", "-db", db, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "more.sum"), buf.Bytes()))

	forkDB := filepath.Join(dir, "fork.db")
	buf.Reset()
	for _, r := range syntheticRecords(10_000, 400) {
		buf.Write(r.Text())
	}
	sumd(t, "add", "-create", "-db", forkDB, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "fork.sum"), buf.Bytes()))
	fork := filepath.Join(dir, "fork-mirror.db")
	sumd(t, "mirror", "import", "-mirror", fork, "-origin-key", vkey, exportPrimary(t, forkDB, key, filepath.Join(dir, "fork.bundle")))

	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, want string }{
		{behind, "the database holds a tree of 350 records, newer than the mirror's 300: restoring from this mirror would roll the log back"},
		{fork, "SECURITY ERROR: the database's tree of 350 records is not a prefix of the mirror's tree of 400 records"},
	} {
		out, errOut, err := sumdRun(t, "restore", "-db", db, "-key", key, "-from", tc.from)
		if statusOf(err) == 0 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "hint: nothing was changed") {
			t.Errorf("restore -from %s: exit %d\n%s%s\nwant %q and a hint that nothing was changed", tc.from, statusOf(err), out, errOut, tc.want)
		}
		if after, _ := os.ReadFile(db); !bytes.Equal(after, before) {
			t.Errorf("restore -from %s: refused, but the database changed", tc.from)
		}
		if m, _ := filepath.Glob(db + ".*restore*"); len(m) > 0 {
			t.Errorf("restore -from %s: refused, but left %q", tc.from, m)
		}
	}
}
