package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// crosscheckEnv is an ociEnv whose registry holds three signed artifacts,
// and a reference checksum database standing in for sum.golang.org: forged
// (a public version the reference holds with other hashes), honest (one it
// holds with the same) and private (one it lacks, under -private).
type crosscheckEnv struct {
	*ociEnv
	forged, honest, private testproxy.Module
	ref                     *sumdServer
	refVkey                 string
}

func newCrosscheckEnv(t *testing.T) *crosscheckEnv {
	t.Helper()
	c := &crosscheckEnv{
		forged:  ociModule("example.com/pub", "v1.0.0", "forged"),
		honest:  ociModule("example.com/pub", "v1.1.0", "honest"),
		private: ociModule("corp.example/priv", "v1.0.0", "private"),
	}
	c.ociEnv = newOCIEnv(t, true, c.forged, c.honest, c.private)
	genuine := ociModule("example.com/pub", "v1.0.0", "genuine")
	refDir := filepath.Join(c.dir, "ref")
	if _, err := testproxy.Build(filepath.Join(refDir, "proxy"), []testproxy.Module{genuine, c.honest}); err != nil {
		t.Fatal(err)
	}
	c.refVkey = strings.TrimSpace(sumd(t, "keygen", "-name", "ref.e2e.example", "-dir", filepath.Join(refDir, "keys")))
	refKey, refDB := filepath.Join(refDir, "keys", "ref.e2e.example.key"), filepath.Join(refDir, "ref.db")
	for i, m := range []testproxy.Module{genuine, c.honest} {
		mv := module.Version{Path: m.Path, Version: m.Version}
		args := []string{"add", "-db", refDB, "-key", refKey}
		if i == 0 {
			args = append(args, "-create")
		}
		sumd(t, append(args, mv.String(), testproxy.ZipPath(filepath.Join(refDir, "proxy"), mv))...)
	}
	c.ref = startServer(t, "-db", refDB, "-key", refKey)
	for _, m := range []testproxy.Module{c.forged, c.honest, c.private} {
		c.push(t, m, true)
	}
	return c
}

// crosscheckFlags are the cross-check options of serve and sync.
func (c *crosscheckEnv) crosscheckFlags() []string {
	return []string{"-crosscheck", "-crosscheck-url", c.ref.url, "-crosscheck-key", c.refVkey,
		"-crosscheck-state", filepath.Join(c.dir, "crosscheck-latest"), "-private", "corp.example",
		"-registry", c.host + "/gomod", "-cosign-key", c.pub}
}

// TestServeSyncCrosscheck: under sumd serve -crosscheck, OCI sync records
// through the same cross-check as the admin API. A signed artifact of a
// public version whose hashes the cross-check's checksum database
// contradicts is refused, every pass, and recorded nowhere; an honest one
// and a private one (-private, unknown to that database) are recorded.
func TestServeSyncCrosscheck(t *testing.T) {
	c := newCrosscheckEnv(t)
	s := startServer(t, append([]string{"-db", c.db, "-key", c.key, "-create", "-upstream", "http://127.0.0.1:1", "-sync-interval", "300ms"},
		c.crosscheckFlags()...)...)

	// Two passes at least: the refused artifact is examined, and refused,
	// again each pass; the others are unchanged.
	deadline := time.Now().Add(30 * time.Second)
	for {
		metrics := getStatus(t, s.url+"/metrics").body
		if strings.Contains(metrics, `sumd_oci_artifacts_total{outcome="refused"} 2`) {
			if !strings.Contains(metrics, `sumd_oci_artifacts_total{outcome="recorded"} 2`) ||
				!strings.Contains(metrics, `sumd_oci_artifacts_total{outcome="error"} 0`) {
				t.Fatalf("metrics:\n%s", grepLines(metrics, "sumd_oci_artifacts_total"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two refused artifacts in 30s:\n%s\nsumd serve:\n%s", grepLines(metrics, "sumd_oci"), s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range []struct {
		m    testproxy.Module
		want bool
	}{{c.honest, true}, {c.private, true}, {c.forged, false}} {
		resp, err := http.Get(s.url + "/lookup/" + m.m.Path + "@" + m.m.Version)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != m.want {
			t.Errorf("lookup %s@%s: %d %s, want recorded %v", m.m.Path, m.m.Version, resp.StatusCode, body, m.want)
		}
	}
	logs := s.stderr.String()
	if !strings.Contains(logs, `msg="OCI sync: refused by the cross-check" outcome=refused artifact=`+c.host+"/gomod/example.com/pub:v1.0.0") ||
		!strings.Contains(logs, "checksum mismatch") {
		t.Errorf("sumd serve logged no refusal naming the artifact and the mismatch:\n%s", logs)
	}
	if h := getStatus(t, s.url+"/healthz"); !strings.Contains(h.body, "the last pass refused 1 tag whose hashes the cross-check contradicts (the upstream checksum database holds others, or none): gomod/example.com/pub:v1.0.0; publish") {
		t.Errorf("/healthz = %d %q", h.status, h.body)
	}
}

// TestSyncCrosscheck: sumd sync takes sumd serve's cross-check options and
// refuses what sumd serve refuses, with exit status 1 naming the artifact
// and both pairs of hashes; the honest and private versions are recorded.
func TestSyncCrosscheck(t *testing.T) {
	c := newCrosscheckEnv(t)
	out, errOut, code := sumdCode(t, nil, append([]string{"sync", "-db", c.db, "-key", c.key, "-create"}, c.crosscheckFlags()...)...)
	want := "sumd: error: artifact " + c.host + "/gomod/example.com/pub:v1.0.0: refused by the cross-check: not found: example.com/pub@v1.0.0: checksum mismatch: computed "
	if code != 1 || !strings.Contains(out, "sync: 2 recorded, 1 refused, 0 unchanged since the last sync; 2 records added") ||
		!strings.Contains(errOut, want) || !strings.Contains(errOut, "ref.e2e.example has ") ||
		!strings.Contains(errOut, "hint: the upstream checksum database holds other hashes") {
		t.Fatalf("sumd sync -crosscheck: exit %d, want 1 and\n%s\ngot:\n%s%s", code, want, out, errOut)
	}
	// The same options in the environment, as a shared configuration
	// gives them: refused again, nothing more recorded.
	env := []string{"SUMD_CROSSCHECK=true", "SUMD_CROSSCHECK_URL=" + c.ref.url, "SUMD_CROSSCHECK_KEY=" + c.refVkey,
		"SUMD_CROSSCHECK_STATE=" + filepath.Join(c.dir, "crosscheck-latest"), "SUMD_PRIVATE=corp.example"}
	out, errOut, code = sumdCode(t, env, "sync", "-db", c.db, "-key", c.key, "-registry", c.host+"/gomod", "-cosign-key", c.pub)
	if code != 1 || !strings.Contains(out, "sync: 1 refused, 2 unchanged since the last sync; 0 records added") {
		t.Errorf("second sumd sync: exit %d\n%s%s", code, out, errOut)
	}

	// A version the log holds with other hashes is a conflict, named as
	// sumd sync without the cross-check names it.
	recorded, published := ociModule("example.com/pub", "v1.2.0", "recorded"), ociModule("example.com/pub", "v1.2.0", "published")
	other := filepath.Join(c.dir, "other")
	if _, err := testproxy.Build(other, []testproxy.Module{recorded}); err != nil {
		t.Fatal(err)
	}
	sumd(t, "add", "-db", c.db, "-key", c.key, "example.com/pub@v1.2.0", testproxy.ZipPath(other, module.Version{Path: "example.com/pub", Version: "v1.2.0"}))
	if _, err := testproxy.Build(c.proxyDir, []testproxy.Module{published}); err != nil {
		t.Fatal(err)
	}
	c.push(t, published, true)
	out, errOut, code = sumdCode(t, nil, append([]string{"sync", "-db", c.db, "-key", c.key}, c.crosscheckFlags()...)...)
	want = "sumd: error: artifact " + c.host + "/gomod/example.com/pub:v1.2.0: example.com/pub@v1.2.0 is already recorded as record 2 with different hashes:"
	if code != 1 || !strings.Contains(out, "1 conflict, 1 refused") || !strings.Contains(errOut, want) {
		t.Errorf("sumd sync -crosscheck of a re-published version: exit %d, want 1 and\n%s\ngot:\n%s%s", code, want, out, errOut)
	}

	s := startServer(t, "-db", c.db, "-key", c.key)
	if r := getStatus(t, s.url+"/lookup/example.com/pub@v1.0.0"); r.status != http.StatusNotFound {
		t.Errorf("lookup of the refused version: %d %s", r.status, r.body)
	}
}
