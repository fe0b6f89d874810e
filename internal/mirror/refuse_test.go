package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/server"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestRefuses makes the origin misbehave in every way a mirror must catch:
// a fork (of the same size and larger), a rollback (a smaller tree that is
// not a prefix of the held one), a head signed by
// another key, a tampered hash tile, a tampered and a malformed data tile,
// each with the mirror far behind (staging) and near. Each round fails
// with a *SecurityError of its kind, stores nothing, and the mirror keeps
// serving its head; once the origin is honest again, it catches up.
func TestRefuses(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 500)
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
	// A rollback: a smaller tree that is not a prefix of the held one (a
	// smaller prefix is a lagging replica: TestFollowBehind).
	rolled := openPrimary(t, o.key)
	addRecords(t, rolled, 0, 100)
	addRecords(t, rolled, 200_000, 300)
	rolledHead, err := rolled.Signed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rollback := o.tamper(func(p string) bool { return p == "/latest" }, func([]byte) []byte { return rolledHead })
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
			// The key a mirror checks is sumd mirror's -origin-key, not
			// sumd verify's -key.
			if tc.kind == KindSignature && !strings.Contains(err.Error(), "check -origin-key,") {
				t.Errorf("%s: the error does not name -origin-key: %v", tc.name, err)
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

	// A fork of a larger tree, signed with the origin's key, diverging
	// inside a tile the extension does not change: refused as a fork,
	// as a round refuses it, not as unverified data.
	fork := openPrimary(t, o.key)
	addRecords(t, fork, 1000, 310)
	o.serve(server.New(testName, fork, server.Options{Logger: quiet}))
	r := testRecord(1005, 1)
	before := s.Commits()
	if _, err := f.Ops().Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); status(err) != http.StatusBadGateway {
		t.Errorf("lookup answered by a fork = %v, want a 502", err)
	}
	if st := f.Status(); s.Commits() != before || !strings.Contains(st.Problem, "(fork)") {
		t.Errorf("lookup answered by a fork: %d commits, status %+v; want none stored and a fork refused", s.Commits()-before, st)
	}
}

func mustKey(t *testing.T) string {
	skey, _, err := itlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

// TestFollowBehind: an origin serving its real, older head (a replica
// lagging behind a load balancer) is behind the mirror, not a security
// event, once the older tree is proved a prefix of the mirror's: with the
// mirror holding the newer head, and with it staging one (the older tree
// then between the held and the staged one). The round fails with a
// *BehindError, stores nothing, counts no security event and does not
// mark the mirror current; once the replica catches up the mirror moves on.
func TestFollowBehind(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	head300 := o.head()
	o.grow(300, 200)
	m, s := newMirror(t, o)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFollower(t, o, m, func(opts *Options) {
		opts.Step = 512
		opts.Now = func() time.Time { return now }
	})
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	held := o.head()
	checked := f.Status().Checked
	now = now.Add(time.Hour)
	o.grow(500, 500)
	head1000 := o.head()
	o.grow(1000, 2500)

	lagging := func(head []byte) http.Handler {
		return o.tamper(func(p string) bool { return p == "/latest" }, func([]byte) []byte { return head })
	}
	behind := func(name string, head []byte, tree, of int64) {
		t.Helper()
		o.serve(lagging(head))
		before := s.Commits()
		_, err := f.Sync(ctx)
		var be *BehindError
		want := fmt.Sprintf("is behind the mirror (tree %d < %d): a lagging replica? Its head is a prefix of the mirror's", tree, of)
		if tree > 500 { // above the held tree: proved to extend it, not a prefix of the staged one
			want = fmt.Sprintf("is behind the tree the mirror is staging (tree %d < %d): a lagging replica? Its head extends the tree the mirror serves", tree, of)
		}
		if !errors.As(err, &be) || be.Tree != tree || be.Held != of || IsSecurity(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: Sync = %v; want a *BehindError (tree %d < %d), not a security error", name, err, tree, of)
		}
		st := f.Status()
		if s.Commits() != before || st.SecurityEvents != 0 || !st.Checked.Equal(*checked) || !strings.Contains(st.Problem, "lagging replica") {
			t.Errorf("%s: %d commits, status %+v", name, s.Commits()-before, st)
		}
		if got, _ := m.Signed(ctx); !bytes.Equal(got, held) {
			t.Errorf("%s: the mirror's head changed", name)
		}
	}
	behind("an older head", head300, 300, 500)

	// Stop a round staging the head of 3500 after its first step.
	o.serve(nil)
	sctx, cancel := context.WithCancel(ctx)
	f.SetProgress(func(done, total int64) { cancel() })
	if _, err := f.Sync(sctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted round: %v", err)
	}
	f.SetProgress(nil)
	if st, err := m.Staged(ctx); err != nil || st == nil || st.Tree.N != 3500 {
		t.Fatalf("staging: %+v, %v", st, err)
	}
	behind("an older head while staging", head300, 300, 3500)
	behind("a head between the held and the staged one", head1000, 1000, 3500)

	o.serve(nil)
	if res, err := f.Sync(ctx); err != nil || res.To.N != 3500 {
		t.Fatalf("once the replica caught up: %+v, %v", res, err)
	}
	sameAs(t, m, o.log, all)
}

// TestStepProvesPassedTarget: a round's target that the mirror has passed
// (a forwarded lookup moved its head while the round fetched) is proved a
// prefix of the head held before the round calls the mirror current: the
// round proved it consistent only with the head it began from.
func TestStepProvesPassedTarget(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	// A fork signed with the origin's key: its first 300 records, then
	// others.
	fork := openPrimary(t, o.key)
	addRecords(t, fork, 0, 300)
	addRecords(t, fork, 5000, 20)
	m, _ := newMirror(t, o)
	f := newFollower(t, o, m, nil)
	o.serve(server.New(testName, fork, server.Options{Logger: quiet}))
	if _, err := f.Sync(ctx); err != nil || m.Published().Tree.N != 320 {
		t.Fatalf("mirror of the fork: %v, tree %d", err, m.Published().Tree.N)
	}
	o.serve(nil)
	o.grow(300, 5)
	tree, err := o.log.Tree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done, err := f.step(ctx, target{o.head(), tree}, nil, nil, &Result{})
	if done || !IsSecurity(err) {
		t.Errorf("step to a tree of 305 records the held fork of 320 does not contain = %v, %v; want a security error", done, err)
	}
	// The honest case: a target the held head contains is reached.
	if done, err := f.step(ctx, target{m.Published().Signed, m.Published().Tree}, nil, nil, &Result{}); !done || err != nil {
		t.Errorf("step to the held head = %v, %v", done, err)
	}
}
