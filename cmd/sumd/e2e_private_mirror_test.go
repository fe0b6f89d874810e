package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
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
