package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestGoCommandKeyRotation rotates the log's key under two go commands,
// one pinned to the old verifier key and one to the new. While both keys
// sign, both verify, across a restart and a grown tree; once the old key is
// retired, only the new one does. An auditor (sumd verify -state) that
// saved its state under the old key carries on with the new key alone,
// with both, and after the retirement.
func TestGoCommandKeyRotation(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	mods := testproxy.Versions("example.com/rot", 4)
	proxyURL, err := testproxy.Build(proxyDir, mods)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "sumd.db")
	oldVKey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	oldKey := filepath.Join(dir, "keys", e2eName+".key")
	newKey := filepath.Join(dir, "next", e2eName+".key")
	sumd(t, "add", "-create", "-db", db, "-key", oldKey, "-gosum",
		writeFile(t, filepath.Join(dir, "a.sum"), goSumFile(t, proxyDir, mods[:2])))

	s := startServer(t, "-db", db, "-key", oldKey)
	oldClient := testproxy.NewGo(t)
	oldClient.Env = append(oldClient.Env, "GOPROXY="+proxyURL, "GOSUMDB="+oldVKey+" "+s.url)
	download(t, oldClient, mods[0])
	audit := filepath.Join(dir, "audit")
	oldVKeyFile, newVKeyFile := filepath.Join(dir, "keys", e2eName+".vkey"), filepath.Join(dir, "next", e2eName+".vkey")
	verifyJSON(t, 0, "-url", s.url, "-key", oldVKeyFile, "-state", audit, "-full")
	s.stop()

	// Rotate: both keys sign from now on; the log grows meanwhile.
	newVKey := strings.TrimSpace(sumd(t, "key", "rotate", "-db", db, "-key", oldKey, "-new-key", newKey))
	if !strings.HasPrefix(newVKey, e2eName+"+") || newVKey == oldVKey {
		t.Fatalf("key rotate printed %q, want a new verifier key for %s", newVKey, e2eName)
	}
	if _, errOut, err := sumdRun(t, "serve", "-listen", "127.0.0.1:0", "-db", db, "-key", oldKey); err == nil || !strings.Contains(errOut, "whose private key was not given") {
		t.Fatalf("serve with only the old key during a rotation: %v\n%s", err, errOut)
	}
	sumd(t, "add", "-db", db, "-key", oldKey+","+newKey, "-gosum",
		writeFile(t, filepath.Join(dir, "b.sum"), goSumFile(t, proxyDir, mods[2:])))
	s = startServer(t, "-db", db, "-key", oldKey+","+newKey)
	oldClient.Env = append(oldClient.Env, "GOSUMDB="+oldVKey+" "+s.url)
	newClient := testproxy.NewGo(t)
	newClient.Env = append(newClient.Env, "GOPROXY="+proxyURL, "GOSUMDB="+newVKey+" "+s.url)
	if err := oldClient.CleanModCache(); err != nil {
		t.Fatal(err)
	}
	download(t, oldClient, mods[1], mods[3])
	download(t, newClient, mods[0], mods[2])
	// The auditor, told of the new key only, proves the tree grew from the
	// head it saved under the old one; then with both keys.
	if rep := verifyJSON(t, 0, "-url", s.url, "-key", newVKeyFile, "-state", audit, "-full"); rep.Previous == nil || rep.Previous.Size != 2 {
		t.Errorf("verify with the new key: previous head %+v, want the one of 2 records saved under the old key", rep.Previous)
	}
	verifyJSON(t, 0, "-url", s.url, "-key", oldVKeyFile, "-key", newVKeyFile, "-state", audit, "-full")
	s.stop()

	// Retire the old key: new clients carry on, old ones are told.
	sumd(t, "key", "retire", "-db", db, "-key", oldKey+","+newKey, "-retire", oldVKey)
	s = startServer(t, "-db", db, "-key", newKey)
	if s.gosumdb != newVKey+" "+s.url {
		t.Errorf("after retiring, serve prints GOSUMDB %q, want the new key", s.gosumdb)
	}
	newClient.Env = append(newClient.Env, "GOSUMDB="+newVKey+" "+s.url)
	oldClient.Env = append(oldClient.Env, "GOSUMDB="+oldVKey+" "+s.url)
	for _, g := range []*testproxy.Go{oldClient, newClient} {
		if err := g.CleanModCache(); err != nil {
			t.Fatal(err)
		}
	}
	download(t, newClient, mods[1], mods[3])
	if rep := verifyJSON(t, 0, "-url", s.url, "-key", newVKey, "-state", audit, "-full"); rep.Previous == nil || rep.Previous.Size != 4 {
		t.Errorf("verify after the retirement: previous head %+v, want the one of 4 records", rep.Previous)
	}
	if out, err := oldClient.Run("mod", "download", args(mods[2])[0]); err == nil || !strings.Contains(out, "note has no verifiable signatures") {
		t.Fatalf("a go command pinned to the retired key: %v\n%s\nwant failure: no verifiable signatures", err, out)
	}
}
