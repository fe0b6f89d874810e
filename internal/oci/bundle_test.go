package oci

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// listBefore makes the registry list a referrer of manifest digest d
// before the real referrers of p, in the referrers API's answer or, without
// one, in the fallback tag sha256-<hex>, and answers requests for d with
// serve (nil: the registry's own, a 404 since it has no such manifest).
func listBefore(t *testing.T, e *syncEnv, p *Pushed, referrers bool, d v1.Hash, serve http.HandlerFunc) {
	t.Helper()
	idx, err := remote.Referrers(p.Ref, remote.WithAuthFromKeychain(testRemote.keychain()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	im.Manifests = append([]v1.Descriptor{{MediaType: manifestType, Size: 500, Digest: d}}, im.Manifests...)
	body, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	list := "/referrers/" + p.Ref.DigestStr()
	if !referrers {
		list = "/manifests/sha256-" + strings.TrimPrefix(p.Ref.DigestStr(), "sha256:")
	}
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, list) && r.Method == http.MethodGet:
			w.Header().Set("Content-Type", indexType)
			w.Write(body)
			return true
		case strings.HasSuffix(r.URL.Path, "/manifests/"+d.String()) && serve != nil:
			serve(w, r)
			return true
		}
		return false
	})
}

// TestSyncUnreadableReferrer: a referrer whose manifest the registry does
// not have (garbage-collected, or listed by anyone who may push the
// fallback tag), or serves with other bytes or too many, is one signature
// that does not verify: the artifact's good signature after it still
// counts, and an artifact with no other is bad_signature, not a failure of
// every pass. A registry failing to serve it (5xx, no answer) is still a
// failure of the pass.
func TestSyncUnreadableReferrer(t *testing.T) {
	bogus := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	serveBytes := func(data []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", manifestType)
			w.Write(data)
		}
	}
	bad := map[string]http.HandlerFunc{
		"missing":    nil,
		"mismatched": serveBytes([]byte(`{"schemaVersion":2,"mediaType":"` + manifestType + `"}`)),
		"too large":  serveBytes(make([]byte, MaxManifestSize+1)),
	}
	failing := map[string]http.HandlerFunc{
		"unavailable": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
		"no answer":   func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
	}
	forReferrers(t, func(t *testing.T, referrers bool) {
		for name, serve := range bad {
			t.Run(name, func(t *testing.T) {
				e := newSyncEnv(t, referrers)
				mod := simpleModule(t, "v1.1.0")
				p := e.push(t, mod, nil)
				signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
				listBefore(t, e, p, referrers, bogus, serve)
				r := e.sync(t)
				e.wantOutcome(t, r, Recorded)
				e.wantRecorded(t, mod)
				if !r.OK() {
					t.Errorf("report %+v, want OK", r)
				}
			})
			t.Run(name+" alone", func(t *testing.T) {
				e := newSyncEnv(t, referrers)
				p := e.push(t, simpleModule(t, "v1.1.0"), nil)
				listBefore(t, e, p, referrers, bogus, serve)
				r := e.sync(t)
				e.wantOutcome(t, r, BadSignature)
				if !strings.Contains(e.logs.String(), bogus.String()) {
					t.Errorf("the log does not name the unreadable referrer:\n%s", e.logs)
				}
			})
		}
		for name, serve := range failing {
			t.Run(name, func(t *testing.T) {
				e := newSyncEnv(t, referrers)
				mod := simpleModule(t, "v1.1.0")
				p := e.push(t, mod, nil)
				signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
				listBefore(t, e, p, referrers, bogus, serve)
				r := e.hostileSync(t) // short timeouts, for "no answer"
				e.wantOutcome(t, r, Failed)
				if len(r.Failures) != 1 || e.log.size() != 0 {
					t.Errorf("failures %v, %d records: want the pass failed and nothing recorded", r.Failures, e.log.size())
				}
			})
		}
	})
}
