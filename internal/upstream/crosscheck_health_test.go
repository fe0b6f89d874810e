package upstream

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestCrosscheckOutageProblem: a cross-check database that cannot be
// reached fails every first lookup of a public version (502) while the
// server's health said ok; failRun checks in a row failing are now a
// problem of the Recorder's health, naming the database by its name (which
// clients see in the 502) and no URL, which ends once the database answers
// again.
func TestCrosscheckOutageProblem(t *testing.T) {
	s := newCheckedSetup(t, CheckerOptions{})
	s.db.add(t, s.right)
	s.lookupAfterDiscovery(t, http.StatusServiceUnavailable)
	for range failRun - 1 {
		s.lookup(t, 502, "upstream proxy error: example.com/m@v1.0.0: cannot cross-check")
	}
	if p := s.rec.Problems(); len(p) != 0 {
		t.Fatalf("problems after %d failed cross-checks: %q, want none", failRun-1, p)
	}
	s.lookup(t, 502, "upstream proxy error: example.com/m@v1.0.0: cannot cross-check")
	p := s.rec.Problems()
	want := fmt.Sprintf("the cross-check with %s (-crosscheck) failed the last %d checks", fakeSumName, failRun)
	if len(p) != 1 || !strings.HasPrefix(p[0], want) || !strings.Contains(p[0], "first lookups of public versions fail") {
		t.Fatalf("problems after %d failed cross-checks: %q, want %q…", failRun, p, want)
	}
	if strings.Contains(p[0], s.proxy.url) || strings.Contains(p[0], "http") {
		t.Errorf("problem %q names a URL", p[0])
	}
	s.proxy.setHook(s.db.serve)
	s.lookup(t, 200, "0\n")
	if p := s.rec.Problems(); len(p) != 0 {
		t.Errorf("problems after the database answered: %q, want none", p)
	}
}

// TestCrosscheckFailOpenProblem: with FailOpen, a version recorded
// unchecked while the database cannot be reached stays unchecked in the
// log for good, so the first one is a problem of the server's health
// saying so, for healthWindow, even once the database answers again, and
// not the fail-closed outage's "first lookups fail".
func TestCrosscheckFailOpenProblem(t *testing.T) {
	s := newCheckedSetup(t, CheckerOptions{FailOpen: true})
	s.db.setStatus(http.StatusServiceUnavailable)
	s.lookup(t, 200, "0\n")
	want := "versions are being recorded unchecked: 1 version recorded without the cross-check with " + fakeSumName
	p := s.rec.Problems()
	if len(p) != 1 || !strings.HasPrefix(p[0], want) {
		t.Fatalf("problems after a version recorded unchecked: %q, want %q…", p, want)
	}
	if strings.Contains(p[0], s.proxy.url) || strings.Contains(p[0], "http") {
		t.Errorf("problem %q names a URL", p[0])
	}

	s.db.setStatus(0)
	m2 := mv("example.com/m", "v1.1.0")
	publish(t, s.proxy.dir, goodModule(m2.Path, m2.Version))
	h := wantHashes(t, s.proxy.dir, m2)
	s.db.add(t, gosum.Record{Path: m2.Path, Version: m2.Version, Hash: h.Hash, GoMod: h.GoMod})
	if _, err := s.rec.Lookup(context.Background(), m2); err != nil {
		t.Fatal(err)
	}
	if p := s.rec.Problems(); len(p) != 1 || !strings.HasPrefix(p[0], want) {
		t.Errorf("problems once the database answered again: %q, want %q… (the version stays unchecked)", p, want)
	}
}

// TestCrosscheckFailOpenCountsRecorded: with FailOpen, a version the
// cross-check let through unchecked was counted among the versions
// "recorded unchecked" as it was let through, before the log stored it;
// when the log then refused it (a conflict with its record, a full disk,
// a commit that failed), /healthz reported a version recorded unchecked
// that the log never held. A version is now counted once it is recorded:
// through an upload (Add), the admin API's Record, or a batch (AddRecords).
func TestCrosscheckFailOpenCountsRecorded(t *testing.T) {
	ctx := context.Background()
	s := newCheckedSetup(t, CheckerOptions{FailOpen: true})
	// The log holds s.m with other hashes than upstream serves.
	wrong := s.right
	wrong.Hash = fakeHash("wrong")
	if _, err := s.log.Add(ctx, wrong); err != nil {
		t.Fatal(err)
	}
	s.db.setStatus(http.StatusServiceUnavailable)
	const counted = "versions are being recorded unchecked"
	for name, add := range map[string]func() error{
		"Add":        func() error { _, err := s.rec.Add(ctx, s.right); return err },
		"Record":     func() error { _, _, err := s.rec.Record(ctx, s.m); return err },
		"AddRecords": func() error { _, _, err := s.rec.AddRecords(ctx, []gosum.Record{otherRecord(1), s.right}); return err },
	} {
		if err := add(); err == nil {
			t.Fatalf("%s of a version conflicting with its record: no error", name)
		}
		if p := s.rec.Problems(); len(p) != 0 {
			t.Errorf("problems after %s recorded nothing: %q, want none", name, p)
		}
	}
	if n := treeSize(t, s.log); n != 1 {
		t.Fatalf("the log holds %d records, want only the one it held", n)
	}
	if _, _, err := s.rec.AddRecords(ctx, []gosum.Record{otherRecord(2), otherRecord(3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rec.Add(ctx, otherRecord(4)); err != nil {
		t.Fatal(err)
	}
	want := counted + ": 3 versions recorded without the cross-check"
	if p := s.rec.Problems(); len(p) != 1 || !strings.HasPrefix(p[0], want) {
		t.Errorf("problems after 3 versions recorded unchecked: %q, want %q…", p, want)
	}
}

// TestCrosscheckFailOpenHeldNotCounted: with FailOpen, an upload (Add) or
// the admin API's Record of a version the log already held, with the same
// hashes, while the database could not be reached was counted among the
// versions "recorded unchecked", though the log held it before (checked,
// perhaps) and the call appended nothing; /healthz then reported a
// version recorded unchecked that no call recorded so. As AddRecords does,
// only a version the call appends is counted.
func TestCrosscheckFailOpenHeldNotCounted(t *testing.T) {
	ctx := context.Background()
	s := newCheckedSetup(t, CheckerOptions{FailOpen: true})
	if _, err := s.log.Add(ctx, s.right); err != nil {
		t.Fatal(err)
	}
	s.db.setStatus(http.StatusServiceUnavailable)
	for name, add := range map[string]func() error{
		"Add":        func() error { _, err := s.rec.Add(ctx, s.right); return err },
		"Record":     func() error { _, _, err := s.rec.Record(ctx, s.m); return err },
		"AddRecords": func() error { _, _, err := s.rec.AddRecords(ctx, []gosum.Record{s.right}); return err },
	} {
		if err := add(); err != nil {
			t.Fatalf("%s of a version the log holds: %v", name, err)
		}
		if p := s.rec.Problems(); len(p) != 0 {
			t.Errorf("problems after %s of a version the log held: %q, want none", name, p)
		}
	}
	if n := treeSize(t, s.log); n != 1 {
		t.Fatalf("the log holds %d records, want the one it held", n)
	}
}
