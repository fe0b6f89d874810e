package tuf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/sumd-project/sumd/internal/tlog"
)

// TestInitLayout checks the files of a new repository: the layout clients
// fetch with consistent snapshots, and private keys kept private.
func TestInitLayout(t *testing.T) {
	vkey := newVKey(t)
	f := newFixture(t, vkey)
	var files []string
	filepath.WalkDir(f.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(f.dir, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	vkeyFile := targetFile(VKeyTarget(testName), []byte(vkey+"\n"))
	for _, want := range []string{".lock", "metadata/1.root.json", "metadata/1.targets.json", "metadata/1.snapshot.json",
		"metadata/timestamp.json", filepath.ToSlash(vkeyFile), "keys/.gitignore"} {
		if !slices.Contains(files, want) {
			t.Errorf("repository lacks %s; it holds %q", want, files)
		}
	}
	if n := len(slices.DeleteFunc(slices.Clone(files), func(s string) bool { return !strings.HasPrefix(s, "targets/sumdb/") })); n != 2 {
		t.Errorf("%d target files, want 2 (.vkey and .json)", n)
	}
	for _, dir := range []string{f.offline, f.online} {
		checkKeyDir(t, dir)
	}
	st := f.status()
	if want := f.clock.Now().Add(DefaultRootExpiry); !st.Expires[metadata.ROOT].Equal(want) {
		t.Errorf("root expires %v, want %v", st.Expires[metadata.ROOT], want)
	}
	if want := f.clock.Now().Add(SnapshotExpiry); !st.Expires[metadata.SNAPSHOT].Equal(want) {
		t.Errorf("snapshot expires %v, want %v", st.Expires[metadata.SNAPSHOT], want)
	}
}

// checkKeyDir checks a key directory: mode 0700, a .gitignore of "*", and
// key files of mode 0600.
func checkKeyDir(t *testing.T, dir string) {
	t.Helper()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory %s: %v, mode %v; want 0700", dir, err, fi.Mode().Perm())
	}
	if data, err := os.ReadFile(filepath.Join(dir, ".gitignore")); err != nil || !strings.Contains(string(data), "\n*\n") {
		t.Errorf("%s/.gitignore = %q, %v; want it to ignore everything", dir, data, err)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "*.key"))
	if len(keys) != 2 {
		t.Errorf("%s holds %d keys, want 2", dir, len(keys))
	}
	for _, k := range keys {
		if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key %s: mode %v, want 0600", k, fi.Mode().Perm())
		}
	}
}

// TestInitRefusesExisting never re-creates a repository: clients pin its
// root.
func TestInitRefusesExisting(t *testing.T) {
	f := newFixture(t)
	_, err := Init(f.dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "already holds a TUF repository") {
		t.Errorf("Init over a repository: %v", err)
	}
}

// TestThresholds creates a root signed by 2 of 3 keys: every key is on
// disk, the root says threshold 2, and signing needs two of them.
func TestThresholds(t *testing.T) {
	dir, offline := filepath.Join(t.TempDir(), "repo"), t.TempDir()
	r, err := Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: offline, RootKeys: 3, RootThreshold: 2, TargetsKeys: 2})
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.loadRoot()
	if err != nil {
		t.Fatal(err)
	}
	roles := root.Signed.Roles
	if len(roles[metadata.ROOT].KeyIDs) != 3 || roles[metadata.ROOT].Threshold != 2 || len(roles[metadata.TARGETS].KeyIDs) != 2 || roles[metadata.TARGETS].Threshold != 1 {
		t.Errorf("root roles %+v %+v, want root 2 of 3 and targets 1 of 2", roles[metadata.ROOT], roles[metadata.TARGETS])
	}
	keys, _ := filepath.Glob(filepath.Join(offline, "root-*.key"))
	one := t.TempDir()
	os.Link(keys[0], filepath.Join(one, filepath.Base(keys[0])))
	var missing *MissingKeysError
	if _, err := r.RotateRoot(RootChange{Expires: time.Now().Add(time.Hour)}, []string{one, one}); !errors.As(err, &missing) || missing.Have != 1 {
		t.Errorf("RotateRoot with one root key twice: %v, want 1 of 2 keys found", err)
	}
	for _, bad := range []InitOptions{{RootKeys: 1, RootThreshold: 2}, {TargetsKeys: 17, TargetsThreshold: 1}} {
		bad.Database, bad.OfflineKeys = mustDatabase(t, newVKey(t)), t.TempDir()
		if _, err := Init(filepath.Join(t.TempDir(), "r"), bad); err == nil {
			t.Errorf("Init(%+v) succeeded", bad)
		}
	}
}

// TestBadTargetsSkipped drops an unverifiable targets version into the
// repository (a half copy from the offline machine): the server keeps
// serving and renewing the last good one, and reports the bad one.
func TestBadTargetsSkipped(t *testing.T) {
	f := newFixture(t)
	f.writeFile([]byte(`{"signed": {"_type": "targets"`), metadataDir, versionedName(2, metadata.TARGETS))
	f.clock.advance(TimestampRenewAfter)
	s := f.signOnline()
	if !s.Timestamp || s.Snapshot || s.Status.Versions[metadata.TARGETS] != 1 || len(s.Status.Problems) != 1 {
		t.Errorf("with a bad targets version 2: %+v, want the timestamp renewed, targets 1 and one problem", s)
	}
	f.mustFetch("")
	f.publish(newVKey(t))
	if st := f.status(); st.Versions[metadata.TARGETS] != 3 || len(st.Problems) != 0 {
		t.Errorf("after publishing past it: %+v, want targets 3", st)
	}
}

// TestTargetsNameFastForward plants targets files a publication used to
// follow by name: an empty 999999999999999999.targets.json made the next
// version 10^18, a name nothing reads, so the publication never reached a
// client. They are reported and stepped over; the next version follows
// the newest one that verifies, for Publish and for a new targets key.
func TestTargetsNameFastForward(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	wrong := metadata.Targets(f.clock.Now().Add(DefaultTargetsExpiry))
	wrong.Signed.Version = 2
	data, err := signAndEncode(wrong, []*Key{mustKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	f.writeFile(data, metadataDir, versionedName(2, metadata.TARGETS))
	f.writeFile(nil, metadataDir, versionedName(999999999999999999, metadata.TARGETS))
	vkey := newVKey(t)
	v, err := f.repo.Publish(mustDatabase(t, vkey), []string{f.offline}, f.clock.Now().Add(DefaultTargetsExpiry))
	if err != nil || v != 3 {
		t.Fatalf("Publish past a wrong-key version 2 and an empty 999999999999999999: version %d, %v; want 3", v, err)
	}
	f.signOnline()
	if st := f.status(); st.Versions[metadata.TARGETS] != 3 || len(st.Problems) != 1 {
		t.Errorf("after publishing: targets version %d, problems %v; want 3 and the empty file above it", st.Versions[metadata.TARGETS], st.Problems)
	}
	if d := f.mustFetch(cache); !slices.Equal(d.VerifierKeys, []string{vkey}) {
		t.Errorf("client learned %v, want %s", d.VerifierKeys, vkey)
	}

	// A new targets key re-signs the targets as the next version too.
	now := f.clock.Now()
	ch := RootChange{TargetsKeys: []*Key{f.newKeyFile(metadata.TARGETS, "next")}, Expires: now.Add(DefaultRootExpiry), TargetsExpires: now.Add(DefaultTargetsExpiry)}
	if _, err := f.repo.RotateRoot(ch, []string{f.offline}); err != nil {
		t.Fatal(err)
	}
	f.signOnline()
	if st := f.status(); st.Versions[metadata.TARGETS] != 4 {
		t.Errorf("after a new targets key: targets version %d, want 4", st.Versions[metadata.TARGETS])
	}
	f.mustFetch(cache)
}

// TestPublishOneDatabase refuses to publish another database's keys.
func TestPublishOneDatabase(t *testing.T) {
	f := newFixture(t)
	_, vkey, err := tlog.GenerateKey("other.example")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewDatabase([]string{vkey}, "")
	if err == nil {
		_, err = f.repo.Publish(other, []string{f.offline}, f.clock.Now().Add(time.Hour))
	}
	if err == nil || !strings.Contains(err.Error(), "publishes database "+testName) {
		t.Errorf("Publish of another database: %v", err)
	}
}

// TestSignOnlineWithoutKeys explains which online key is missing.
func TestSignOnlineWithoutKeys(t *testing.T) {
	f := newFixture(t)
	f.clock.advance(TimestampRenewAfter)
	var missing *MissingKeysError
	_, err := f.repo.SignOnline([]string{t.TempDir()}, f.clock.Now())
	if !errors.As(err, &missing) || missing.Role != metadata.TIMESTAMP {
		t.Errorf("SignOnline without keys: %v, want MissingKeysError for timestamp", err)
	}
}

// TestDamagedTargetRewritten damages the hashed target file of the vkey
// (a bad disk, a writer without the keys), then publishes the same keys
// again. The file at the content's hash name used to be kept whatever it
// held, so clients kept failing on its hash; it is now rewritten.
func TestDamagedTargetRewritten(t *testing.T) {
	vkey := newVKey(t)
	f := newFixture(t, vkey)
	vkeyFile := targetFile(VKeyTarget(testName), []byte(vkey+"\n"))
	f.writeFile([]byte("damaged\n"), vkeyFile)
	if _, err := f.fetch(""); err == nil {
		t.Fatal("a client accepted the damaged target")
	}
	f.publish(vkey)
	if got := string(f.readFile(vkeyFile)); got != vkey+"\n" {
		t.Errorf("after publishing again, %s holds %q, want %q", vkeyFile, got, vkey+"\n")
	}
	f.mustFetch("")
}

// TestInitOfflineKeysNotOnline: the offline keys written to the online
// keys' directory (-keys naming the directory of -online-keys, or DIR/keys
// by default) left the root and targets keys where the server signs,
// beside keys that must stay; Init refuses such a directory and writes
// nothing.
func TestInitOfflineKeysNotOnline(t *testing.T) {
	for _, keys := range []func(base, dir string) InitOptions{
		func(base, dir string) InitOptions {
			return InitOptions{OfflineKeys: filepath.Join(dir, DefaultOnlineKeys)}
		},
		func(base, dir string) InitOptions {
			return InitOptions{OfflineKeys: filepath.Join(base, "keys"), OnlineKeys: filepath.Join(base, "x", "..", "keys")}
		},
	} {
		base := t.TempDir()
		dir := filepath.Join(base, "repo")
		o := keys(base, dir)
		o.Database = mustDatabase(t, newVKey(t))
		if _, err := Init(dir, o); err == nil || !strings.Contains(err.Error(), "offline keys") {
			t.Errorf("Init with offline keys %s and online keys %s: %v, want a refusal", o.OfflineKeys, o.OnlineKeys, err)
		}
		if _, err := os.Stat(filepath.Join(dir, metadataDir)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Init refused, but wrote %s: %v", metadataDir, err)
		}
	}
}
