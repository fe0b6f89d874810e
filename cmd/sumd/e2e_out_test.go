package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOutputNeverReplaces: sumd backup and sumd mirror export refuse an -o
// that names anything that exists — the live database of the server being
// backed up (which keeps serving from its untouched file), the database
// being copied, the mirror being exported, another file, a directory, a
// symbolic link, a named pipe — with exit status 2, and leave no temporary
// file behind. (The old code renamed the copy over the live database: the
// server stopped and the records acknowledged since the copy were lost.)
func TestOutputNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 300)
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	p := startServer(t, "-db", db, "-key", key, "-admin-token-file", token)
	latest := func() string {
		t.Helper()
		resp, err := http.Get(p.url + "/latest")
		if err != nil {
			t.Fatalf("the server stopped serving: %v\n%s", err, p.stderr)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /latest: %s\n%s", resp.Status, body)
		}
		return string(body)
	}
	head := latest()
	dbInfo, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	mdb := filepath.Join(dir, "mirror.db")
	mirrorOf(t, mdb, p.url, vkey)

	out := t.TempDir()
	other := writeFile(t, filepath.Join(out, "other.db"), []byte("an older backup"))
	sub := filepath.Join(out, "sub")
	link := filepath.Join(out, "link.db") // dangling: nothing may be created through it
	fifo := filepath.Join(out, "fifo.db")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(out, "target.db"), link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	refused := func(want string, args ...string) {
		t.Helper()
		_, errOut, err := sumdRun(t, args...)
		if statusOf(err) != 2 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "hint: -o names a new file") {
			t.Errorf("sumd %s: exit %d\n%s\nwant 2, %q and a hint", strings.Join(args, " "), statusOf(err), errOut, want)
		}
	}
	online := []string{"backup", "-server", p.url, "-token-file", token, "-o"}
	refused("-o "+db+" already exists", append(online, db)...)
	refused("already exists", append(online, other)...)
	refused("is a directory", append(online, sub)...)
	refused("is a symbolic link", append(online, link)...)
	refused("is not a regular file", append(online, fifo)...)
	refused("-o "+mdb+" is the database -mirror names", "mirror", "export", "-mirror", mdb, "-o", mdb)
	refused("already exists", "mirror", "export", "-mirror", mdb, "-o", other)

	if got := latest(); got != head {
		t.Errorf("the server's head moved from\n%s\nto\n%s", head, got)
	}
	if fi, err := os.Stat(db); err != nil || !os.SameFile(fi, dbInfo) {
		t.Errorf("the served database %s was replaced (%v)", db, err)
	}
	if data, _ := os.ReadFile(other); string(data) != "an older backup" {
		t.Errorf("%s now holds %d bytes", other, len(data))
	}
	if _, err := os.Lstat(filepath.Join(out, "target.db")); err == nil {
		t.Error("a file was created through the symbolic link -o named")
	}
	if got := sumd(t, "backup", "verify", "-vkey", vkey, mdb); !strings.Contains(got, "a mirror of") {
		t.Errorf("backup verify of the mirror after the refused export printed %q", got)
	}
	p.stop()
	refused("-o "+db+" is the database -db names", "backup", "-db", db, "-o", db)

	// A new file is written; nothing else is left in its directory.
	if got := sumd(t, "backup", "-db", db, "-o", filepath.Join(sub, "new.db")); !strings.Contains(got, "verified in full") {
		t.Errorf("backup into a new file printed %q", got)
	}
	sumd(t, "mirror", "export", "-mirror", mdb, "-o", filepath.Join(sub, "new.bundle"))
	for _, d := range []string{dir, out, sub} {
		left, _ := filepath.Glob(filepath.Join(d, "*.tmp*"))
		for _, f := range left {
			if fi, err := os.Stat(f); err == nil && !fi.IsDir() { // sumd.db.tmp/ is the server's scratch directory
				t.Errorf("temporary file left: %s", f)
			}
		}
	}
}
