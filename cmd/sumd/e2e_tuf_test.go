package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumd-project/sumd/internal/audit"
	"github.com/sumd-project/sumd/internal/testnet"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tuf"
)

// TestTUFKeyCeremony runs docs/keys.md with the sumd binary: tuf init;
// serve -tuf; a go command whose GOSUMDB comes from sumd tuf gosumdb;
// sumd verify -tuf-root; key rotate + tuf publish, after which go-tuf
// clients learn both keys; key retire + tuf publish while serving, after
// which they learn the new key alone, from the running server, and the
// auditor's state carries over.
func TestTUFKeyCeremony(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	mods := testproxy.Versions("example.com/tuf", 3)
	proxyURL, err := testproxy.Build(proxyDir, mods)
	if err != nil {
		t.Fatal(err)
	}
	db, repo, offline, state := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "tuf"), filepath.Join(dir, "offline"), filepath.Join(dir, "audit")
	oldVKey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	oldKey, newKey := filepath.Join(dir, "keys", e2eName+".key"), filepath.Join(dir, "next", e2eName+".key")
	sumd(t, "add", "-create", "-db", db, "-key", oldKey, "-gosum", writeFile(t, filepath.Join(dir, "a.sum"), goSumFile(t, proxyDir, mods)))

	// One URL across restarts, chosen before the first start: tuf init
	// publishes it, and needs the database no server may hold then.
	addr := testnet.FreeAddr(t)
	url, tufURL := "http://"+addr, "http://"+addr+"/tuf"
	root := strings.TrimSpace(sumd(t, "tuf", "init", "-dir", repo, "-keys", offline, "-db", db, "-key", oldKey, "-url", url))
	if root != filepath.Join(repo, "metadata", "1.root.json") {
		t.Fatalf("tuf init printed %q, want the root to pin", root)
	}
	s := startServerAt(t, addr, "-db", db, "-key", oldKey, "-tuf", repo)
	wantPublished(t, root, tufURL, oldVKey)
	gosumdb := strings.TrimSpace(sumd(t, "tuf", "gosumdb", "-tuf-root", root, "-tuf-url", tufURL))
	if gosumdb != oldVKey+" "+url {
		t.Fatalf("tuf gosumdb printed %q, want %q", gosumdb, oldVKey+" "+url)
	}
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+proxyURL, "GOSUMDB="+gosumdb)
	download(t, g, mods[0])
	sumd(t, "verify", "-tuf-root", root, "-tuf-url", tufURL, "-state", state)
	s.stop()

	// Rotate: publish both keys; every client learns them.
	newVKey := strings.TrimSpace(sumd(t, "key", "rotate", "-db", db, "-key", oldKey, "-new-key", newKey))
	sumd(t, "tuf", "publish", "-dir", repo, "-keys", offline, "-db", db, "-key", oldKey+","+newKey)
	s = startServerAt(t, addr, "-db", db, "-key", oldKey+","+newKey, "-tuf", repo)
	wantPublished(t, root, tufURL, oldVKey, newVKey)
	sumd(t, "verify", "-tuf-root", root, "-tuf-url", tufURL, "-state", state)
	// During the overlap gosumdb prints the oldest key, which verifies the
	// tree head g kept from before the rotation (the new key would not).
	gosumdb = strings.TrimSpace(sumd(t, "tuf", "gosumdb", "-tuf-root", root, "-tuf-url", tufURL))
	if gosumdb != oldVKey+" "+url {
		t.Fatalf("during the overlap tuf gosumdb printed %q, want the oldest key %q", gosumdb, oldVKey+" "+url)
	}
	g.Env = append(g.Env, "GOSUMDB="+gosumdb)
	download(t, g, mods[1])
	newClient := testproxy.NewGo(t)
	newClient.Env = append(newClient.Env, "GOPROXY="+proxyURL, "GOSUMDB="+gosumdb)
	download(t, newClient, mods[1])
	s.stop()

	// Retire, and publish while serving: the server holds the database,
	// so the key is given with -vkey, and serves the result at once.
	sumd(t, "key", "retire", "-db", db, "-key", oldKey+","+newKey, "-retire", oldVKey)
	startServerAt(t, addr, "-db", db, "-key", newKey, "-tuf", repo)
	sumd(t, "tuf", "publish", "-dir", repo, "-keys", offline, "-vkey", newVKey)
	wantPublished(t, root, tufURL, newVKey)
	sumd(t, "verify", "-tuf-root", root, "-tuf-url", tufURL, "-state", state)
	// Run again after the retirement, gosumdb prints the new key, which
	// verifies the head newClient kept from the overlap.
	newClient.Env = append(newClient.Env, "GOSUMDB="+strings.TrimSpace(sumd(t, "tuf", "gosumdb", "-tuf-root", root, "-tuf-url", tufURL)))
	download(t, newClient, mods[2])
	if out := sumd(t, "tuf", "status", "-dir", repo); !strings.Contains(out, "targets   version 3 ") || !strings.Contains(out, "vkey      "+newVKey+"\n") {
		t.Errorf("tuf status after two publications:\n%s", out)
	}
}

// wantPublished fetches the published keys with go-tuf's updater, from
// root version 1, and compares them with vkeys.
func wantPublished(t *testing.T, rootFile, url string, vkeys ...string) {
	t.Helper()
	root, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tuf.Fetch(tuf.ClientOptions{Root: root, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.VerifierKeys, vkeys) {
		t.Fatalf("published keys %q, want %q", d.VerifierKeys, vkeys)
	}
}

// TestVerifyTUFFindingJSON: sumd verify -json whose keys come through TUF
// and whose TUF metadata does not verify (a timestamp signature altered)
// exits 1, a finding, as docs/keys.md says; its JSON report listed no
// problem, only an error, which says the audit could not run. The report
// lists the finding now, as a tuf problem.
func TestVerifyTUFFindingJSON(t *testing.T) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	db, err := tuf.NewDatabase([]string{vkey}, "https://"+e2eName)
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "tuf")
	if _, err := tuf.Init(repo, tuf.InitOptions{Database: db, OfflineKeys: filepath.Join(dir, "offline")}); err != nil {
		t.Fatal(err)
	}
	h, err := tuf.NewHandler(repo, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if r.URL.Path == "/tuf/metadata/timestamp.json" {
			// A signature of another message: the same length, not
			// verifying, and still hex (flipping a bit of 'f' or 'a'
			// made it malformed, one run in eight, which go-tuf
			// reports as a parse error, not a security one).
			i := bytes.Index(body, []byte(`"sig": "`)) + len(`"sig": "`)
			body = bytes.Clone(body)
			if body[i] == '0' {
				body[i] = '1'
			} else {
				body[i] = '0'
			}
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	defer srv.Close()
	rep := verifyJSON(t, 1, "-tuf-root", filepath.Join(repo, "metadata", "1.root.json"), "-tuf-url", srv.URL+"/tuf")
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != audit.KindTUF || !strings.Contains(rep.Problems[0].Message, "SECURITY ERROR") || rep.Error == "" {
		t.Errorf("report %+v, want one tuf problem and the error", rep)
	}
}

// TestVerifyTUFWrongKeyHint: a database whose /latest is not signed by the
// keys its TUF repository publishes (its key changed without a
// publication, or someone else answers at its URL) is a signature
// problem, whose message told the operator to check -key, an option not
// given: the keys came through TUF. It names where they came from now.
func TestVerifyTUFWrongKeyHint(t *testing.T) {
	dir := t.TempDir()
	published := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "published")))
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "other"))
	skey, err := os.ReadFile(filepath.Join(dir, "other", e2eName+".key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	head, err := note.Sign(&note.Note{Text: "go.sum database tree\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	// Set once the repository exists, after the server starts: atomic, as
	// the race detector cannot see the request (from a child process) that
	// orders the two.
	var tufHandler atomic.Value // http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest" {
			w.Write(head)
			return
		}
		tufHandler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	defer srv.Close()
	db, err := tuf.NewDatabase([]string{published}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "tuf")
	if _, err := tuf.Init(repo, tuf.InitOptions{Database: db, OfflineKeys: filepath.Join(dir, "offline")}); err != nil {
		t.Fatal(err)
	}
	h, err := tuf.NewHandler(repo, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tufHandler.Store(http.Handler(h))
	rep := verifyJSON(t, 1, "-tuf-root", filepath.Join(repo, "metadata", "1.root.json"), "-tuf-url", srv.URL+"/tuf")
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != audit.KindSignature {
		t.Fatalf("report %+v, want one signature problem", rep)
	}
	if msg := rep.Problems[0].Message; strings.Contains(msg, "-key") || !strings.Contains(msg, "-tuf-root") {
		t.Errorf("signature problem %q, want it to name the TUF repository, not -key", msg)
	}
}
