package main

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/gosum"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// sharedMem is a MemStore that says other processes write it too, as a
// PostgreSQL database does.
type sharedMem struct{ *itlog.MemStore }

func (sharedMem) Shared() bool { return true }

// TestAddCountsOwnRecords: on a database another sumd writes, sumd add
// says "recorded" or "already recorded" of its own record, not of whether
// the tree grew: the log adopts the other writer's records while it adds.
func TestAddCountsOwnRecords(t *testing.T) {
	skey, _, err := itlog.GenerateKey(e2eName)
	if err != nil {
		t.Fatal(err)
	}
	key, err := itlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	store := sharedMem{itlog.NewMemStore()}
	open := func() *itlog.Log {
		l, err := itlog.OpenStore(store, itlog.Options{Keys: []*itlog.Key{key}, Create: true, RefreshInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	ours, other := open(), open()
	recs := syntheticRecords(0, 3)
	if _, err := addTo(ours, recs[:1]); err != nil {
		t.Fatal(err)
	}
	addN(t, other, 10, 2) // two versions this process has not seen
	got, err := addTo(ours, recs[:1])
	if err != nil || got.new != 0 || got.ids[0] != 0 {
		t.Errorf("adding a recorded version again = %+v, %v; want 0 new (already recorded), id 0", got, err)
	}
	got, err = addTo(ours, recs[1:2])
	if err != nil || got.new != 1 || got.size != 4 {
		t.Errorf("adding a new version = %+v, %v; want 1 new, tree size 4", got, err)
	}
	// The other writer records a version this process has not seen,
	// which it then adds too: its id is past the tree this process knew
	// of, but the other writer recorded it.
	addN(t, other, 2, 1)
	got, err = addTo(ours, recs[2:3])
	if err != nil || got.new != 0 {
		t.Errorf("adding a version the other writer recorded meanwhile = %+v, %v; want 0 new (already recorded)", got, err)
	}
}

// TestAddCreateRefusedAfterCreating: sumd add -create, refused after it
// created the log (a record the log refuses), leaves nothing it made: not
// the new database, nor the directories made for it; what was there
// before stays.
func TestAddCreateRefusedAfterCreating(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	existing := filepath.Join(dir, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := gosum.Record{Path: "example.com/refused", Version: "v1.0.0", Hash: "h1:bad", GoMod: "h1:bad"}
	for _, db := range []string{filepath.Join(dir, "new", "dir", "sumd.db"), filepath.Join(existing, "sumd.db")} {
		cfg := &config.Add{Database: config.Database{DB: db, Key: l.key}, Creating: config.Creating{Create: true}}
		if _, err := record(cfg, []gosum.Record{bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "malformed record") {
			t.Fatalf("%s: recording a malformed record = %v, want it refused", db, err)
		}
		for _, gone := range []string{filepath.Join(dir, "new"), db} {
			if _, err := os.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: the refused sumd add -create left %s behind (%v)", db, gone, err)
			}
		}
	}
	if !exists(existing) {
		t.Errorf("the refused sumd add -create removed %s, which was there before it", existing)
	}
}

// TestAddCreateRefusedWhileCreating: sumd add -create, sumd serve -create
// and sumd sync -create, refused while creating the log (a -min-free-disk
// above the free space refuses its first write), leave nothing they made:
// not the new database file, which holds no log, nor the directories made
// for it; what was there before stays, and their hint says no database
// was left, where it said the database was intact. A later -create starts
// cleanly.
func TestAddCreateRefusedWhileCreating(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	mod := filepath.Join(dir, "mod")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/refused\n"))
	existing := filepath.Join(dir, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	const floor = "536870912" // MiB: 512 TiB, more than any test machine has free
	gosum := writeFile(t, filepath.Join(dir, "refused.sum"), verifyRecord("refused", 1).Text())
	_, cosignPub := cosignKeys(t, dir)
	for _, tc := range []struct {
		name string
		db   string
		args []string
	}{
		{"add, new directories", filepath.Join(dir, "new", "dir", "sumd.db"), []string{"add", "example.com/refused@v1.0.0", mod}},
		{"add, existing directory", filepath.Join(existing, "sumd.db"), []string{"add", "example.com/refused@v1.0.0", mod}},
		{"add -gosum, new directories", filepath.Join(dir, "new", "dir", "sumd.db"), []string{"add", "-gosum", gosum}},
		{"serve, new directories", filepath.Join(dir, "new", "dir", "sumd.db"), []string{"serve", "-listen", "127.0.0.1:0"}},
		{"sync, new directories", filepath.Join(dir, "new", "dir", "sumd.db"), []string{"sync", "-registry", "registry.example/gomod", "-cosign-key", cosignPub}},
	} {
		args := append([]string{tc.args[0], "-create", "-min-free-disk", floor, "-db", tc.db, "-key", l.key}, tc.args[1:]...)
		out, errOut, err := sumdRun(t, args...)
		if statusOf(err) != 1 || !strings.Contains(errOut, "failed to create the log") {
			t.Fatalf("%s: %v\n%s%s\nwant it refused", tc.name, err, out, errOut)
		}
		// No database is left to be intact: the hint says so.
		if _, hint, _ := strings.Cut(errOut, "hint:"); strings.Contains(hint, "intact") || !strings.Contains(hint, "no database") {
			t.Errorf("%s: hint %q, want it to say no database was left", tc.name, hint)
		}
		for _, gone := range []string{filepath.Join(dir, "new"), tc.db, tc.db + ".tmp"} {
			if _, err := os.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: the refused sumd %s -create left %s behind (%v)", tc.name, tc.args[0], gone, err)
			}
		}
		if !exists(existing) {
			t.Fatalf("%s: the refused run removed %s, which was there before it", tc.name, existing)
		}
	}
	db := filepath.Join(dir, "new", "dir", "sumd.db")
	if out := sumd(t, "add", "-create", "-db", db, "-key", l.key, "example.com/refused@v1.0.0", mod); !strings.Contains(out, "recorded") {
		t.Errorf("sumd add -create after the refused runs: %s", out)
	}
}
