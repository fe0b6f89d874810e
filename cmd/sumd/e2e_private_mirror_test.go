package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestServePrivateMirror mirrors an origin that asks for credentials, with
// an auditor's token the mirror's database remembers. sumd serve refuses
// to serve that mirror to clients it asks for no credentials (it would
// hand them the origin's private data, and forward their lookups with the
// stored token), with or without -read-listen, and before it creates a log
// of its own; with -read-auth it serves the mirror to its own auditors only.
func TestServePrivateMirror(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "origin.db", 300)
	tokens := writeSecret(t, filepath.Join(dir, "tokens"), "replica:replica-token-0123456789:auditor\n")
	origin := startServer(t, "-db", db, "-key", key, "-read-auth", "bearer", "-read-auth-file", tokens)
	token := writeSecret(t, filepath.Join(dir, "auditor.token"), "replica-token-0123456789\n")
	mdb := filepath.Join(dir, "mirror.db")
	mirrorOf(t, mdb, origin.url, vkey, "-auth", "bearer:"+token)

	sumd(t, "keygen", "-name", "own.example", "-dir", filepath.Join(dir, "keys"))
	own := filepath.Join(dir, "own.db")
	tile := "/sumdb/" + e2eName + "/tile/8/data/000"
	for _, args := range [][]string{
		{"-mirror-only", "-mirror", mdb},
		{"-mirror-only", "-mirror", mdb, "-read-listen", "127.0.0.1:0"},
		{"-create", "-db", own, "-key", filepath.Join(dir, "keys", "own.example.key"), "-mirror", mdb},
	} {
		s, err := launchServer(t, "", nil, args...)
		if err == nil {
			code, _ := bearerGet(t, s.url+tile, "")
			t.Errorf("sumd serve %s started; an anonymous GET %s got %d", strings.Join(args, " "), tile, code)
			s.stop()
			continue
		}
		for _, want := range []string{"reads its origin with credentials (bearer:" + token + ")", "hint: ", "-read-auth"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("sumd serve %s: the refusal does not say %q:\n%v", strings.Join(args, " "), want, err)
			}
		}
	}
	if _, err := os.Stat(own); err == nil {
		t.Errorf("the refused start created %s", own)
	}

	s := startServer(t, "-mirror-only", "-mirror", mdb, "-read-auth", "bearer", "-read-auth-file", tokens)
	if code, _ := bearerGet(t, s.url+tile, ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous GET %s = %d, want 401", tile, code)
	}
	if code, body := bearerGet(t, s.url+tile, "replica-token-0123456789"); code != http.StatusOK {
		t.Errorf("an auditor's GET %s = %d %q, want 200", tile, code, body)
	}
}

// bearerGet GETs url with token as the bearer token ("": none).
func bearerGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// mirrorPrivateOrigin makes a 300-record log in dir served only to the
// bearer tokens of dir/tokens (an auditor's, "replica", also in
// dir/auditor.token, and the lines extra adds), mirrors it into mdb with
// the auditor's token, and stops the origin. It returns the log's verifier and signing keys, its
// database and the tokens file.
func mirrorPrivateOrigin(t *testing.T, dir, mdb string, extra ...string) (vkey, key, db, tokens string) {
	t.Helper()
	vkey, key, db = syntheticLog(t, dir, "origin.db", 300)
	lines := "replica:replica-token-0123456789:auditor\n"
	for _, l := range extra {
		lines += l + "\n"
	}
	tokens = writeSecret(t, filepath.Join(dir, "tokens"), lines)
	origin := startServer(t, "-db", db, "-key", key, "-read-auth", "bearer", "-read-auth-file", tokens)
	token := writeSecret(t, filepath.Join(dir, "auditor.token"), "replica-token-0123456789\n")
	mirrorOf(t, mdb, origin.url, vkey, "-auth", "bearer:"+token)
	origin.stop()
	return vkey, key, db, tokens
}

// TestImportPrivateBundle: a bundle exported from a mirror that reads its
// origin with credentials carries the origin's private data across the
// gap. Imported into a new mirror (which has no origin, so no credentials
// of its own to remember), the data was served to anonymous clients by a
// plain sumd serve -mirror; the mirror now records that its data came
// from a private mirror, sumd serve refuses to serve it without asking
// every client for credentials, and the mirror's own bundles say private
// in turn.
func TestImportPrivateBundle(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside.db")
	vkey, _, _, tokens := mirrorPrivateOrigin(t, dir, outside)
	b1 := filepath.Join(dir, "1.bundle")
	if out := sumd(t, "mirror", "export", "-mirror", outside, "-o", b1); !strings.Contains(out, "marked private") {
		t.Errorf("the export of a private mirror does not say its bundle is marked private:\n%s", out)
	}

	inside := filepath.Join(dir, "inside.db")
	out := sumd(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, b1)
	if !strings.Contains(out, "private") {
		t.Errorf("the import of a private mirror's bundle does not say the mirror is private now:\n%s", out)
	}
	if rw := storedMirrorConfig(t, inside).ReadWith; rw == "" {
		t.Errorf("the mirror made of a private mirror's bundle records no read_with")
	}
	tile := "/sumdb/" + e2eName + "/tile/8/data/000"
	if s, err := launchServer(t, "", nil, "-mirror-only", "-mirror", inside); err == nil {
		code, _ := bearerGet(t, s.url+tile, "")
		t.Errorf("sumd serve -mirror-only -mirror %s started; an anonymous GET %s got %d", inside, tile, code)
		s.stop()
	} else if !strings.Contains(err.Error(), "private mirror") || !strings.Contains(err.Error(), "-read-auth") {
		t.Errorf("the refusal does not say the data came from a private mirror's bundle, and what to do:\n%v", err)
	}
	s := startServer(t, "-mirror-only", "-mirror", inside, "-read-auth", "bearer", "-read-auth-file", tokens)
	if code, _ := bearerGet(t, s.url+tile, "replica-token-0123456789"); code != http.StatusOK {
		t.Errorf("an auditor's GET %s = %d, want 200", tile, code)
	}
	s.stop()

	// The inside mirror's own bundle is private too: the record travels on.
	b2 := filepath.Join(dir, "2.bundle")
	sumd(t, "mirror", "export", "-mirror", inside, "-o", b2)
	further := filepath.Join(dir, "further.db")
	sumd(t, "mirror", "import", "-mirror", further, "-origin-key", vkey, b2)
	if rw := storedMirrorConfig(t, further).ReadWith; rw == "" {
		t.Errorf("a mirror made of a bundle of a private mirror's import records no read_with")
	}
}

// TestBackupPrivateMirror backs up a private mirror through its server
// (a mirror-only server with the admin role serves its first mirror's
// backups): the copy keeps the mirror's configuration as it was (origin,
// keys, the credentials' files, read_with), verifies in full, and sumd
// serve refuses the copy to anonymous clients as it refuses the mirror.
func TestBackupPrivateMirror(t *testing.T) {
	dir := t.TempDir()
	mdb := filepath.Join(dir, "mirror.db")
	vkey, _, _, tokens := mirrorPrivateOrigin(t, dir, mdb, "ops:ops-token-0123456789abcdef:admin")
	want := storedMirrorConfig(t, mdb)

	s := startServer(t, "-mirror-only", "-mirror", mdb, "-read-auth", "bearer", "-read-auth-file", tokens, "-mirror-interval", "1h")
	ops := writeSecret(t, filepath.Join(dir, "ops.token"), "ops-token-0123456789abcdef\n")
	cp := filepath.Join(dir, "copy.db")
	if out := sumd(t, "backup", "-server", s.url, "-auth", "bearer:"+ops, "-o", cp); !strings.Contains(out, "verified in full") {
		t.Fatalf("backup of the mirror printed %q", out)
	}
	s.stop()
	if got := storedMirrorConfig(t, cp); !reflect.DeepEqual(got, want) {
		t.Errorf("the backup's mirror configuration is %+v, want the mirror's %+v", got, want)
	}
	if out, errOut, err := sumdRun(t, "backup", "verify", "-vkey", vkey, cp); err != nil {
		t.Errorf("backup verify of the mirror's copy: %v\n%s%s", err, out, errOut)
	}
	if m, err := launchServer(t, "", nil, "-mirror-only", "-mirror", cp); err == nil {
		m.stop()
		t.Errorf("sumd serve -mirror-only -mirror %s (a private mirror's backup) started without -read-auth", cp)
	} else if !strings.Contains(err.Error(), "reads its origin with credentials (bearer:"+filepath.Join(dir, "auditor.token")+")") {
		t.Errorf("the refusal of the backup does not name the credentials:\n%v", err)
	}
}

// TestImportPrivateBundleHeldTree: a private mirror's bundle of the tree a
// public mirror already holds stores nothing and leaves the mirror public
// (docs/mirrors.md), but sumd mirror import said that sumd serve now
// serves the mirror only to clients it asks for credentials: an operator
// believed a mirror served to anyone was closed. It says so only of a
// mirror the import left private.
func TestImportPrivateBundleHeldTree(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside.db")
	vkey, key, db, _ := mirrorPrivateOrigin(t, dir, outside)
	b := filepath.Join(dir, "private.bundle")
	sumd(t, "mirror", "export", "-mirror", outside, "-o", b)

	open := startServer(t, "-db", db, "-key", key)
	public := filepath.Join(dir, "public.db")
	mirrorOf(t, public, open.url, vkey)
	open.stop()
	out := sumd(t, "mirror", "import", "-mirror", public, "-origin-key", vkey, b)
	if rw := storedMirrorConfig(t, public).ReadWith; rw != "" {
		t.Fatalf("a private bundle of the held tree made the mirror private (read_with %q)", rw)
	}
	if strings.Contains(out, "only to clients") {
		t.Errorf("the import of a private bundle that left the mirror public says it is served only to clients asked for credentials:\n%s", out)
	}
}
