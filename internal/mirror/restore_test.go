package mirror

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestRestore rebuilds a primary from a full mirror of it, alone and
// rolling an old copy forward: the rebuilt log opens with the primary's
// key, verifies in full, and its next head extends the mirror's newest.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 600)
	old := itlog.NewMemStore()
	copyLog(t, o, old) // an old backup, at 600 records
	o.grow(600, 700)
	m, _ := newMirror(t, o)
	if _, err := newFollower(t, o, m, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, withOld := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "restored.db")
		dst, err := itlog.OpenBolt(path, itlog.BoltOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		var from itlog.Store
		if withOld {
			from = old
		}
		st, err := Restore(ctx, dst, m, []*itlog.Key{o.key}, from, RestoreOptions{Batch: 500, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if st.Tree.N != 1300 || withOld && st.Previous.N != 600 {
			t.Errorf("restore: %+v", st)
		}
		dst.Close()
		l, err := itlog.Open(path, itlog.Options{Keys: []*itlog.Key{o.key}, Verify: itlog.VerifyFull, Logger: quiet})
		if err != nil {
			t.Fatalf("the restored database does not open: %v", err)
		}
		sameAs(t, l, o.log, all)
		addRecords(t, l, 99_000, 5)
		next, _ := l.Tree(ctx)
		if err := itlog.ProveExtends(next, st.Tree, l.HashReader()); err != nil {
			t.Errorf("the restored primary's next head does not extend the mirror's: %v", err)
		}
		l.Close()
	}
}

// TestRestoreRefuses: a mirror behind the database, a database that forks
// from the mirror, another log's key, a partial mirror.
func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 600)
	m, _ := newMirror(t, o)
	if _, err := newFollower(t, o, m, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	head600, tree600 := o.head(), mustTree(t, m)
	o.grow(600, 100)
	newer := itlog.NewMemStore()
	copyLog(t, o, newer)
	// The same, its head rolled back to 600 behind the log's back: its
	// records prove a tree of 700 was signed.
	rolled := itlog.NewMemStore()
	copyLog(t, o, rolled)
	if err := rolled.Commit(ctx, &itlog.Batch{Prev: o.head(), Head: head600, Tree: tree600}); err != nil {
		t.Fatal(err)
	}
	forked := itlog.NewMemStore()
	fl, err := itlog.OpenStore(forked, itlog.Options{Keys: []*itlog.Key{o.key}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	addRecords(t, fl, 7_000, 300)
	fl.Close()
	partial, _ := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	if _, err := newFollower(t, o, partial, func(opts *Options) { opts.Select = sel }).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// As sumd mirror -modules records it.
	if err := WriteConfig(ctx, partial, &Config{Modules: []string{"golang.org/x/*"}, VerifierKeys: partial.VerifierKeys()}); err != nil {
		t.Fatal(err)
	}
	other, _ := itlog.ParseKey(mustKey(t))
	for _, tc := range []struct {
		name string
		src  *itlog.Log
		key  *itlog.Key
		old  itlog.Store
		want string
	}{
		{"mirror behind", m, o.key, newer, "would roll the log back"},
		{"mirror behind a rolled-back database's data", m, o.key, rolled, "holds data of a tree of at least 700 records (its head, rolled back, says 600), more than the mirror's 600"},
		{"fork", m, o.key, forked, "SECURITY ERROR"},
		{"another key", m, other, nil, "not signed by"},
		{"partial mirror", partial, o.key, nil, "the mirror is partial"},
	} {
		dst := itlog.NewMemStore()
		_, err := Restore(ctx, dst, tc.src, []*itlog.Key{tc.key}, tc.old, RestoreOptions{Logger: quiet})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Restore = %v, want %q", tc.name, err, tc.want)
		}
		// Refused before anything is written: a partial mirror was
		// found out at its first missing record, which may come hours
		// into the restore of a large log.
		if _, err := dst.Load(ctx); !errors.Is(err, itlog.ErrNoLog) {
			t.Errorf("%s: refused, but the restored store holds a log (Load: %v)", tc.name, err)
		}
	}
}

// TestRestoreRefusesStaged: a mirror interrupted while catching up holds a
// newer head the primary signed, staged; restoring the primary to the
// older published tree would make its next head a fork of that one.
func TestRestoreRefusesStaged(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	if _, err := newFollower(t, o, m, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	o.grow(300, 3000)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := newFollower(t, o, m, func(opts *Options) {
		opts.Step = 256
		opts.Progress = func(done, total int64) { cancel() }
	})
	f.Sync(sctx)
	if st, err := m.Staged(ctx); err != nil || st == nil || st.Tree.N != 3300 {
		t.Fatalf("the interrupted catch-up staged %+v, %v; want the head of 3,300 records", st, err)
	}
	_, err := Restore(ctx, itlog.NewMemStore(), m, []*itlog.Key{o.key}, nil, RestoreOptions{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "interrupted while catching up to a newer head of the primary (tree 3300; it holds 300)") {
		t.Errorf("Restore from a mirror with a staged head = %v, want it refused", err)
	}
}

func mustTree(t *testing.T, l *itlog.Log) tlog.Tree {
	t.Helper()
	tree, err := l.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// copyLog copies o's log as it is now into s (a backup).
func copyLog(t *testing.T, o *origin, s *itlog.MemStore) {
	t.Helper()
	ctx := context.Background()
	l, err := itlog.OpenStore(s, itlog.Options{Keys: []*itlog.Key{o.key}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tree, _ := o.log.Tree(ctx)
	addRecords(t, l, 0, int(tree.N)) // the origin's records are testRecord(i, 1), in order
	if h, _ := l.Signed(ctx); string(h) != string(o.head()) {
		t.Fatal("the copy's head differs from the origin's") // Ed25519 signatures are deterministic
	}
}

// TestRestoreKeepsRetiredKeys: a restore over an old database keeps the
// record of the keys sumd key retire retired there (perhaps leaked), so
// that the restored log's AddKey (sumd key rotate) still refuses them.
// The restored file, which replaces the old one, had lost it.
func TestRestoreKeepsRetiredKeys(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 100)
	old := itlog.NewMemStore()
	copyLog(t, o, old)
	skey, _, err := itlog.GenerateKey(o.key.Name())
	if err != nil {
		t.Fatal(err)
	}
	leaked, err := itlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.SetAux(ctx, itlog.AuxRetiredKeys, []byte(leaked.VerifierKey()+"\n")); err != nil {
		t.Fatal(err)
	}
	m, _ := newMirror(t, o)
	if _, err := newFollower(t, o, m, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	dst, err := itlog.OpenBolt(path, itlog.BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, dst, m, []*itlog.Key{o.key}, old, RestoreOptions{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	l, err := itlog.Open(path, itlog.Options{Keys: []*itlog.Key{o.key}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.AddKey(ctx, leaked); err == nil || !strings.Contains(err.Error(), "was retired") {
		t.Errorf("AddKey of a key the old database recorded as retired, on the restored one = %v, want a refusal", err)
	}
}

// TestRestoreRefusesRetiredKey: a restore over an old database refuses a
// key the old one records as retired, though the mirror's newest head is
// signed by it (a head from before the retirement, of the same tree): the
// restored log would sign with a key retired perhaps because it leaked.
func TestRestoreRefusesRetiredKey(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 100)
	old := itlog.NewMemStore()
	copyLog(t, o, old)
	if err := old.SetAux(ctx, itlog.AuxRetiredKeys, []byte(o.key.VerifierKey()+"\n")); err != nil {
		t.Fatal(err)
	}
	m, _ := newMirror(t, o)
	if _, err := newFollower(t, o, m, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(ctx, itlog.NewMemStore(), m, []*itlog.Key{o.key}, old, RestoreOptions{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "retired") {
		t.Errorf("Restore with a key the old database retired = %v, want a refusal", err)
	}
}
