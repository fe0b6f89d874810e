package mirror

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/server"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestRefuses makes the origin misbehave in every way a mirror must catch:
// a fork (of the same size and larger), a rollback, a head signed by
// another key, a tampered hash tile, a tampered and a malformed data tile,
// each with the mirror far behind (staging) and near. Each round fails
// with a *SecurityError of its kind, stores nothing, and the mirror keeps
// serving its head; once the origin is honest again, it catches up.
func TestRefuses(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	oldHead := o.head()
	o.grow(300, 200)
	m, s := newMirror(t, o)
	f := newFollower(t, o, m, func(opts *Options) { opts.Step = 512 })
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	held := o.head()
	o.grow(500, 3000) // far ahead: the next round stages

	fork := func(n int) http.Handler {
		l := openPrimary(t, o.key)
		addRecords(t, l, 0, 490)
		addRecords(t, l, 100_000, n-490)
		return server.New(testName, l, server.Options{Logger: quiet})
	}
	impostorKey, _ := itlog.ParseKey(mustKey(t))
	impostor := openPrimary(t, impostorKey)
	addRecords(t, impostor, 0, 3500)
	rollback := o.tamper(func(p string) bool { return p == "/latest" }, func([]byte) []byte { return oldHead })
	flipTile := o.tamper(isTile("0"), func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	flipRecord := o.tamper(isTile("data"), func(b []byte) []byte {
		return bytes.Replace(b, []byte("v1.1.0 h1:"), []byte("v1.2.0 h1:"), 1)
	})
	malformed := o.tamper(isTile("data"), func(b []byte) []byte { return b[:len(b)-1] })
	for _, tc := range []struct {
		name string
		h    http.Handler
		kind string
	}{
		{"fork of the same size", fork(500), KindFork},
		{"fork", fork(3500), KindFork},
		{"rollback", rollback, KindRollback},
		{"bad signature", server.New(testName, impostor, server.Options{Logger: quiet}), KindSignature},
		{"tampered hash tile", flipTile, KindTampered},
		{"tampered record", flipRecord, KindTampered},
		{"malformed data tile", malformed, KindTampered},
	} {
		for _, step := range []int64{512, 1 << 20} {
			f.opts.Step = step
			o.serve(tc.h)
			before := s.Commits()
			_, err := f.Sync(ctx)
			var se *SecurityError
			if !errors.As(err, &se) || se.Kind != tc.kind {
				t.Errorf("%s (step %d): Sync = %v, want a %s SecurityError", tc.name, step, err, tc.kind)
				continue
			}
			if !bytes.Equal(se.Held, held) || len(se.Offered) == 0 {
				t.Errorf("%s: the error does not quote both heads: %q, %q", tc.name, se.Held, se.Offered)
			}
			if s.Commits() != before {
				t.Errorf("%s (step %d): refused, but stored", tc.name, step)
			}
			if got, _ := m.Signed(ctx); !bytes.Equal(got, held) {
				t.Errorf("%s: the mirror's head changed", tc.name)
			}
			if st := f.Status(); st.Problem == "" || !strings.Contains(st.Problem, tc.kind) {
				t.Errorf("%s: status problem %q", tc.name, st.Problem)
			}
		}
	}
	o.serve(nil)
	f.opts.Step = 512
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sameAs(t, m, o.log, all)
	if st := f.Status(); st.SecurityEvents != 14 || st.Problem != "" {
		t.Errorf("status after recovery: %+v", st)
	}
}

// TestForwardRefuses: a forwarded lookup whose answer does not verify is
// refused with a 502, and nothing is stored.
func TestForwardRefuses(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, s := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	want := testRecord(17, 1)
	mv := module.Version{Path: want.Path, Version: want.Version}
	isLookup := func(p string) bool { return strings.HasPrefix(p, "/lookup/") }
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"tampered record", o.tamper(isLookup, func(b []byte) []byte {
			return bytes.Replace(b, []byte("h1:"), []byte("h1:A"), 1)[:len(b)]
		})},
		{"another record", o.tamper(isLookup, func(b []byte) []byte { return bytes.Replace(b, []byte("17\n"), []byte("18\n"), 1) })},
		{"tampered head", o.tamper(isLookup, func(b []byte) []byte { return bytes.Replace(b, []byte("tree\n300"), []byte("tree\n301"), 1) })},
	} {
		o.serve(tc.h)
		before := s.Commits()
		if _, err := f.Ops().Lookup(ctx, mv); status(err) != http.StatusBadGateway {
			t.Errorf("%s: lookup = %v, want a 502", tc.name, err)
		}
		if s.Commits() != before {
			t.Errorf("%s: refused, but stored", tc.name)
		}
	}
	o.serve(nil)
	if id, err := f.Ops().Lookup(ctx, mv); err != nil || id != 17 {
		t.Fatalf("honest lookup = %d, %v", id, err)
	}
}

func mustKey(t *testing.T) string {
	skey, _, err := itlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	return skey
}
