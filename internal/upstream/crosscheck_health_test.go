package upstream

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
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
