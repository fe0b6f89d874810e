package proxytree

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// zipModule zips the module directory files for m, as sumd add does, and
// returns the zip and the go.mod a proxy serves for it.
func zipModule(t *testing.T, m module.Version, files map[string]string) (string, []byte) {
	t.Helper()
	src := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	zipFile := filepath.Join(t.TempDir(), "m.zip")
	f, err := os.Create(zipFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := modzip.CreateFromDir(f, m, src); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := modhash.HashZip(m, zipFile, nil); err != nil {
		t.Fatal(err)
	}
	mod, err := modhash.GoModOf(m, zipFile)
	if err != nil {
		t.Fatal(err)
	}
	return zipFile, mod
}

// TestGoCommandDownloads publishes versions (one with capitals, one
// +incompatible without go.mod, a pseudo-version) and has the real go
// command download each from the tree, offline, with the hashes sumd
// records for them.
func TestGoCommandDownloads(t *testing.T) {
	dir := t.TempDir()
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY=file://"+filepath.ToSlash(dir), "GOSUMDB=off")
	for _, tc := range []struct {
		m     module.Version
		files map[string]string
	}{
		{module.Version{Path: "example.com/m", Version: "v1.2.3"}, map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", "m.go": "package m\n"}},
		{module.Version{Path: "example.com/m", Version: "v1.0.0"}, map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"}},
		{module.Version{Path: "example.com/Upper", Version: "v0.1.0-RC.1"}, map[string]string{"go.mod": "module example.com/Upper\n", "u.go": "package upper\n"}},
		{module.Version{Path: "example.com/old", Version: "v2.0.0+incompatible"}, map[string]string{"old.go": "package old\n"}},
		{module.Version{Path: "example.com/m", Version: "v0.0.0-20240101000000-abcdefabcdef"}, map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"}},
	} {
		zipFile, mod := zipModule(t, tc.m, tc.files)
		if err := Add(dir, tc.m, zipFile, mod, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)); err != nil {
			t.Fatalf("Add(%s): %v", tc.m, err)
		}
		sums, err := modhash.HashZip(tc.m, zipFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := g.Run("mod", "download", "-json", tc.m.String())
		if err != nil {
			t.Fatalf("go mod download %s: %v\n%s", tc.m, err, out)
		}
		var got struct{ Sum, GoModSum string }
		if err := json.Unmarshal([]byte(out), &got); err != nil || got.Sum != sums.Hash || got.GoModSum != sums.GoMod {
			t.Errorf("go mod download %s: %s (%v); want Sum %s, GoModSum %s", tc.m, out, err, sums.Hash, sums.GoMod)
		}
	}
	list, _ := os.ReadFile(filepath.Join(dir, "example.com", "m", "@v", "list"))
	if string(list) != "v1.0.0\nv1.2.3\n" {
		t.Errorf("list = %q, want the tagged versions in semver order", list)
	}
	if out, err := g.Run("list", "-m", "-versions", "example.com/m"); err != nil || strings.TrimSpace(out) != "example.com/m v1.0.0 v1.2.3" {
		t.Errorf("go list -m -versions: %q, %v", out, err)
	}
}

// TestAddAgain checks that publishing a version again with the same content
// changes nothing, and with other content is refused.
func TestAddAgain(t *testing.T) {
	dir := t.TempDir()
	m := module.Version{Path: "example.com/m", Version: "v1.0.0"}
	zipFile, mod := zipModule(t, m, map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"})
	if err := Add(dir, m, zipFile, mod, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	info := filepath.Join(dir, "example.com", "m", "@v", "v1.0.0.info")
	before, _ := os.ReadFile(info)
	if err := Add(dir, m, zipFile, mod, time.Unix(2, 0)); err != nil {
		t.Fatalf("Add again: %v", err)
	}
	if after, _ := os.ReadFile(info); string(after) != string(before) {
		t.Errorf("Add again rewrote .info: %s, was %s", after, before)
	}
	other, otherMod := zipModule(t, m, map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m // changed\n"})
	if err := Add(dir, m, other, otherMod, time.Unix(3, 0)); !errors.Is(err, ErrChanged) {
		t.Errorf("Add with other content = %v, want ErrChanged", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "example.com", "m", "@v", ".tmp-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestAddFinishesPublish: an Add that stopped after the .mod (a crash)
// left a version without .info and list, and adding it again found the
// same zip and go.mod and returned, so the go command never saw it. It now
// writes what is missing; an .info already there is kept.
func TestAddFinishesPublish(t *testing.T) {
	m := module.Version{Path: "example.com/m", Version: "v1.2.3"}
	zipFile, mod := zipModule(t, m, map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", "m.go": "package m\n"})
	vdir := func(dir string) string { return filepath.Join(dir, "example.com", "m", "@v") }
	for _, lost := range [][]string{{"v1.2.3.info", "list"}, {"list"}} {
		dir := t.TempDir()
		if err := Add(dir, m, zipFile, mod, time.Unix(1, 0)); err != nil {
			t.Fatal(err)
		}
		info, _ := os.ReadFile(filepath.Join(vdir(dir), "v1.2.3.info"))
		for _, name := range lost {
			os.Remove(filepath.Join(vdir(dir), name))
		}
		if err := Add(dir, m, zipFile, mod, time.Unix(2, 0)); err != nil {
			t.Fatalf("Add after losing %v: %v", lost, err)
		}
		got, err := os.ReadFile(filepath.Join(vdir(dir), "v1.2.3.info"))
		if len(lost) == 1 && string(got) != string(info) || err != nil || !strings.Contains(string(got), `"Version":"v1.2.3"`) {
			t.Errorf("after losing %v: .info %q, %v; want one for v1.2.3, kept if it was there (%q)", lost, got, err, info)
		}
		if list, _ := os.ReadFile(filepath.Join(vdir(dir), "list")); string(list) != "v1.2.3\n" {
			t.Errorf("after losing %v: list %q, want the version", lost, list)
		}
	}
}

// TestAddSyncs: the files of a version reach the disk before the list
// names it. Without the syncs, a crash (a power cut) could leave a listed
// v1.2.3.zip empty, which the next Add took for another build (ErrChanged,
// whose hint says to leave it) and a proxy served as a broken version. A
// sync that fails is Add's failure, and the version is not listed.
func TestAddSyncs(t *testing.T) {
	dir := t.TempDir()
	m := module.Version{Path: "example.com/m", Version: "v1.2.3"}
	zipFile, mod := zipModule(t, m, map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"})
	errSync := errors.New("sync failed")
	var synced []string
	syncFile = func(f *os.File) error {
		synced = append(synced, f.Name())
		return errSync
	}
	defer func() { syncFile = (*os.File).Sync }()
	if err := Add(dir, m, zipFile, mod, time.Unix(1, 0)); !errors.Is(err, errSync) {
		t.Errorf("Add with a failing sync = %v, want its error", err)
	}
	if len(synced) == 0 {
		t.Error("Add synced no file")
	}
	if _, err := os.Stat(filepath.Join(dir, "example.com", "m", "@v", "list")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("list after a failed sync: %v, want none", err)
	}
}

// TestAddSyncsNewDirs: Add created a module's directories (os.Root's
// MkdirAll) without syncing the directories holding them, so a crash after
// an Add that succeeded could lose a version's whole directory, list
// included, which the go command then never finds; the parent of each
// directory Add creates is synced now.
func TestAddSyncsNewDirs(t *testing.T) {
	dir := t.TempDir()
	m := module.Version{Path: "example.com/m", Version: "v1.2.3"}
	zipFile, mod := zipModule(t, m, map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"})
	synced := map[string]bool{}
	syncDirFile = func(f *os.File) error {
		synced[filepath.Clean(f.Name())] = true
		return f.Sync()
	}
	defer func() { syncDirFile = (*os.File).Sync }()
	if err := Add(dir, m, zipFile, mod, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{".", "example.com", "example.com/m", "example.com/m/@v"} {
		if !synced[filepath.Join(dir, d)] {
			t.Errorf("Add did not sync %s, which holds a directory it created: synced %v", d, synced)
		}
	}
}

// TestAddStaysInTree: links in the tree that lead out of it, planted by
// whoever may write there (the web server's user, whose tree root's sumd
// add publishes into), are not followed: a list linked to a secret file
// was read and its words written into the list the proxy serves, and a
// module directory linked elsewhere was written into.
func TestAddStaysInTree(t *testing.T) {
	m := module.Version{Path: "example.com/m", Version: "v1.2.3"}
	zipFile, mod := zipModule(t, m, map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"})

	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "shadow")
	os.WriteFile(secret, []byte("root:$6$secret\n"), 0o600)
	vdir := filepath.Join(dir, "example.com", "m", "@v")
	os.MkdirAll(vdir, 0o755)
	if err := os.Symlink(secret, filepath.Join(vdir, "list")); err != nil {
		t.Fatal(err)
	}
	if err := Add(dir, m, zipFile, mod, time.Unix(1, 0)); err == nil {
		t.Error("Add with a list linked out of the tree succeeded")
	}
	list := filepath.Join(vdir, "list")
	if fi, err := os.Lstat(list); err == nil && fi.Mode().IsRegular() {
		if data, _ := os.ReadFile(list); strings.Contains(string(data), "secret") {
			t.Errorf("Add copied the file a link in the tree named into the list: %q", data)
		}
	}

	dir = t.TempDir()
	elsewhere := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "example.com"), 0o755)
	if err := os.Symlink(elsewhere, filepath.Join(dir, "example.com", "m")); err != nil {
		t.Fatal(err)
	}
	if err := Add(dir, m, zipFile, mod, time.Unix(1, 0)); err == nil {
		t.Error("Add through a module directory linked out of the tree succeeded")
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) > 0 {
		t.Errorf("Add wrote out of the tree, through a link: %v", entries)
	}
}

// TestAddStreamsZip: Add read the whole zip into memory, and the one
// published before it too when adding a version again: up to about 1 GiB
// for a module zip of the go command's 500 MiB limit. It now copies and
// compares them in small pieces, so that what it allocates does not grow
// with the zip; a zip of the same size with other content is still
// refused.
func TestAddStreamsZip(t *testing.T) {
	dir := t.TempDir()
	m := module.Version{Path: "example.com/big", Version: "v1.0.0"}
	const size = 8 << 20
	data := make([]byte, size) // random, so that the zip is about as large
	rand.NewChaCha8([32]byte{1}).Read(data)
	zipFile, mod := zipModule(t, m, map[string]string{"go.mod": "module example.com/big\n", "big.bin": string(data)})
	for _, again := range []bool{false, true} {
		if got := allocated(t, func() error { return Add(dir, m, zipFile, mod, time.Unix(1, 0)) }); got > size/4 {
			t.Errorf("Add (again: %v) of a %d MiB zip allocated %d bytes, want it not to hold the zip", again, size>>20, got)
		}
	}
	data[size/2] ^= 1
	other, otherMod := zipModule(t, m, map[string]string{"go.mod": "module example.com/big\n", "big.bin": string(data)})
	if a, b := fileSize(t, zipFile), fileSize(t, other); a != b {
		t.Fatalf("the changed zip is %d bytes, the first %d: want the same size", b, a)
	}
	if err := Add(dir, m, other, otherMod, time.Unix(2, 0)); !errors.Is(err, ErrChanged) {
		t.Errorf("Add of a zip of the same size with other content = %v, want ErrChanged", err)
	}
}

// allocated returns the bytes the heap allocated while f ran.
func allocated(t *testing.T, f func() error) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := f(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
