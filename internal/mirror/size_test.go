package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// hugeHead is a head of a tree of n records signed with the origin's own
// key: what a broken or compromised origin can serve.
func hugeHead(t *testing.T, key *itlog.Key, n int64) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: n}))}, key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// within runs f and fails the test if it takes longer than d: a tree that
// is too large used to spin for ever inside x/mod's tlog (2^62 or more) or
// grow the memory by gigabytes (2^40), neither of which stops for a
// context.
func within(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("still running after %s", d)
		return nil
	}
}

// TestRefusesHugeTree: a head signed with the origin's key but claiming a
// tree over MaxTreeSize — through /latest, a forwarded lookup or a bundle
// — is refused at once as a security event, and nothing is stored.
func TestRefusesHugeTree(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, s := newMirror(t, o)
	f := newFollower(t, o, m, nil)
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	held, _ := m.Signed(ctx)
	o.grow(300, 3) // versions the mirror lacks: their lookups are forwarded
	for i, n := range []int64{MaxTreeSize + 1, 1 << 40, sumdbclient.MaxTreeSize + 1} {
		huge := hugeHead(t, o.key, n)
		before := s.Commits()

		o.serve(o.tamper(func(p string) bool { return p == "/latest" }, func([]byte) []byte { return huge }))
		err := within(t, 20*time.Second, func() error { _, err := f.Sync(ctx); return err })
		var se *SecurityError
		if !errors.As(err, &se) || !bytes.Contains([]byte(err.Error()), []byte("broken or compromised origin")) {
			t.Errorf("tree of %d through /latest: Sync = %v, want a SecurityError naming the size", n, err)
		}

		lookup := regexp.MustCompile(`(?s)^(\d+\n.*?\n\n).*$`)
		o.serve(o.tamper(func(p string) bool { return bytes.HasPrefix([]byte(p), []byte("/lookup/")) }, func(b []byte) []byte {
			return append(lookup.ReplaceAll(b, []byte("$1")), huge...)
		}))
		err = within(t, 20*time.Second, func() error {
			r := testRecord(300+i, 1)
			_, err := f.Ops().Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
			return err
		})
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("the mirror refused it")) {
			t.Errorf("tree of %d through a forwarded lookup: %v, want a refusal", n, err)
		}
		o.serve(nil)

		bundle := rewrite(t, readEntries(t, export(t, o.log, 0)), func(e []entry) []entry {
			for i := range e {
				switch e[i].name {
				case headerName:
					e[i].data = regexp.MustCompile(`(?m)^to \d+$`).ReplaceAll(e[i].data, fmt.Appendf(nil, "to %d", n))
				case headName:
					e[i].data = huge
				}
			}
			return e
		})
		err = within(t, 20*time.Second, func() error {
			_, err := importBundle(t, m, o.key.VerifierKey(), bundle, 0)
			return err
		})
		if err == nil {
			t.Errorf("a bundle to a tree of %d was imported", n)
		}
		if got, _ := m.Signed(ctx); s.Commits() != before || !bytes.Equal(got, held) {
			t.Errorf("tree of %d: refused, but the mirror changed", n)
		}
	}
}

// TestMaxBundleSize: every bundle Export writes, full or incremental, at
// any edge, is within MaxBundleSize of its header (cmd/sumd stops copying a
// piped bundle there), and a header beyond the largest tree a mirror
// takes has no size.
func TestMaxBundleSize(t *testing.T) {
	o := newOrigin(t, 256)
	for _, sizes := range []struct {
		to    int // trees of 256^k records have a tile more
		since []int64
	}{
		{256, []int64{0, 255}},
		{65_536, []int64{0, 256, 65_535}},
		{70_000, []int64{0, 1, 255, 256, 65_535, 65_536, 69_999, 70_000}},
	} {
		if n := int(o.log.Published().Tree.N); sizes.to > n {
			o.grow(n, sizes.to-n)
		}
		for _, since := range sizes.since {
			b := export(t, o.log, since)
			h, err := ReadBundleHeader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if max, err := MaxBundleSize(h); err != nil || int64(len(b)) > max {
				t.Errorf("bundle from %d to %d: %d bytes, MaxBundleSize %d, %v", h.From, h.To, len(b), max, err)
			}
		}
	}
	if _, err := MaxBundleSize(BundleHeader{To: MaxTreeSize + 1}); err == nil {
		t.Errorf("MaxBundleSize of a tree beyond MaxTreeSize: no error")
	}
	if max, err := MaxBundleSize(BundleHeader{To: MaxTreeSize}); err != nil || max <= 0 {
		t.Errorf("MaxBundleSize of the largest tree: %d, %v", max, err)
	}
}
