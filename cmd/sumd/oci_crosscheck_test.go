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

// TestServeSyncCrosscheck: under sumd serve -crosscheck, OCI sync records
// through the same cross-check as the admin API. A signed artifact of a
// public version whose hashes the cross-check's checksum database
// contradicts is refused, every pass, and recorded nowhere; an honest one
// and a private one (-private, unknown to that database) are recorded.
func TestServeSyncCrosscheck(t *testing.T) {
	forged := ociModule("example.com/pub", "v1.0.0", "forged")
	honest := ociModule("example.com/pub", "v1.1.0", "honest")
	private := ociModule("corp.example/priv", "v1.0.0", "private")
	e := newOCIEnv(t, true, forged, honest, private)

	// The reference, standing in for sum.golang.org, holds the genuine
	// v1.0.0 and the honest v1.1.0.
	genuine := ociModule("example.com/pub", "v1.0.0", "genuine")
	refDir := filepath.Join(e.dir, "ref")
	if _, err := testproxy.Build(filepath.Join(refDir, "proxy"), []testproxy.Module{genuine, honest}); err != nil {
		t.Fatal(err)
	}
	refVkey := strings.TrimSpace(sumd(t, "keygen", "-name", "ref.e2e.example", "-dir", filepath.Join(refDir, "keys")))
	refKey, refDB := filepath.Join(refDir, "keys", "ref.e2e.example.key"), filepath.Join(refDir, "ref.db")
	for i, m := range []testproxy.Module{genuine, honest} {
		mv := module.Version{Path: m.Path, Version: m.Version}
		args := []string{"add", "-db", refDB, "-key", refKey}
		if i == 0 {
			args = append(args, "-create")
		}
		sumd(t, append(args, mv.String(), testproxy.ZipPath(filepath.Join(refDir, "proxy"), mv))...)
	}
	ref := startServer(t, "-db", refDB, "-key", refKey)

	for _, m := range []testproxy.Module{forged, honest, private} {
		e.push(t, m, true)
	}
	s := startServer(t, "-db", e.db, "-key", e.key, "-create",
		"-upstream", "http://127.0.0.1:1", "-crosscheck", "-crosscheck-url", ref.url, "-crosscheck-key", refVkey,
		"-crosscheck-state", filepath.Join(e.dir, "crosscheck-latest"), "-private", "corp.example",
		"-registry", e.host+"/gomod", "-cosign-key", e.pub, "-sync-interval", "300ms")

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
	for _, c := range []struct {
		m    testproxy.Module
		want bool
	}{{honest, true}, {private, true}, {forged, false}} {
		resp, err := http.Get(s.url + "/lookup/" + c.m.Path + "@" + c.m.Version)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != c.want {
			t.Errorf("lookup %s@%s: %d %s, want recorded %v", c.m.Path, c.m.Version, resp.StatusCode, body, c.want)
		}
	}
	logs := s.stderr.String()
	if !strings.Contains(logs, `msg="OCI sync: refused by the cross-check" outcome=refused artifact=`+e.host+"/gomod/example.com/pub:v1.0.0") ||
		!strings.Contains(logs, "checksum mismatch") {
		t.Errorf("sumd serve logged no refusal naming the artifact and the mismatch:\n%s", logs)
	}
	if h := getStatus(t, s.url+"/healthz"); !strings.Contains(h.body, "the last pass refused 1 signed versions whose hashes the cross-check contradicts") {
		t.Errorf("/healthz = %d %q", h.status, h.body)
	}
}
