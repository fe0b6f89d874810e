package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
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
	served := map[v1.Hash]http.HandlerFunc{}
	if serve != nil {
		served[d] = serve
	}
	listFirst(t, e, p, referrers, []v1.Descriptor{{MediaType: manifestType, Size: 500, Digest: d}}, served)
}

// listFirst makes the registry list descs before the real referrers of p,
// as listBefore does, and answers requests for the manifests of served.
func listFirst(t *testing.T, e *syncEnv, p *Pushed, referrers bool, descs []v1.Descriptor, served map[v1.Hash]http.HandlerFunc) {
	t.Helper()
	idx, err := remote.Referrers(p.Ref, remote.WithAuthFromKeychain(testRemote.keychain()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	im.Manifests = append(slices.Clone(descs), im.Manifests...)
	body, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	list := "/referrers/" + p.Ref.DigestStr()
	if !referrers {
		list = "/manifests/sha256-" + strings.TrimPrefix(p.Ref.DigestStr(), "sha256:")
	}
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, list) && r.Method == http.MethodGet {
			w.Header().Set("Content-Type", indexType)
			w.Write(body)
			return true
		}
		for d, serve := range served {
			if strings.HasSuffix(r.URL.Path, "/manifests/"+d.String()) {
				serve(w, r)
				return true
			}
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

// TestSyncReferrerCap: the cap on referrers counts those inspected (their
// manifest fetched), not those the listing says are something else (an
// image index, an SBOM's artifactType): however many of these come first,
// the signature after them is found. Past the cap of inspected ones, the
// rest are not looked at, and the log says so.
func TestSyncReferrerCap(t *testing.T) {
	other := func(i int) v1.Hash {
		return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)}
	}
	forReferrers(t, func(t *testing.T, referrers bool) {
		t.Run("other referrers first", func(t *testing.T) {
			e := newSyncEnv(t, referrers)
			mod := simpleModule(t, "v1.1.0")
			p := e.push(t, mod, nil)
			signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
			var descs []v1.Descriptor
			for i := range maxReferrers {
				descs = append(descs,
					v1.Descriptor{MediaType: indexType, Size: 500, Digest: other(2 * i)},
					v1.Descriptor{MediaType: manifestType, ArtifactType: "application/spdx+json", Size: 500, Digest: other(2*i + 1)})
			}
			listFirst(t, e, p, referrers, descs, nil)
			r := e.sync(t)
			e.wantOutcome(t, r, Recorded)
			e.wantRecorded(t, mod)
		})
		t.Run("cap", func(t *testing.T) {
			e := newSyncEnv(t, referrers)
			p := e.push(t, simpleModule(t, "v1.1.0"), nil)
			signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
			var descs []v1.Descriptor
			for i := range maxReferrers {
				descs = append(descs, v1.Descriptor{MediaType: manifestType, Size: 500, Digest: other(i)})
			}
			listFirst(t, e, p, referrers, descs, nil) // each a 404: a signature that does not verify
			r := e.sync(t)
			e.wantOutcome(t, r, BadSignature)
			if !strings.Contains(e.logs.String(), fmt.Sprintf("only the first %d referrers were inspected", maxReferrers)) {
				t.Errorf("the log does not say the referrers were capped:\n%s", e.logs)
			}
		})
	})
}

// TestSyncOversizedBundle: a referrer that may be a bundle but whose
// manifest or bundle layer is over its limit is a signature that does not
// verify, named in the artifact's log line (bad_signature), not skipped as
// if the artifact had none (unsigned).
func TestSyncOversizedBundle(t *testing.T) {
	bigLayer := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"mediaType":%q,"size":%d,"digest":"sha256:%064x"}]}`,
		manifestType, BundleMediaType, BundleMediaType, maxBundleSize+1, 1))
	bigLayerDigest, _, err := v1.SHA256(bytes.NewReader(bigLayer))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		desc   v1.Descriptor
		served map[v1.Hash]http.HandlerFunc
		want   string
	}{
		"manifest": {
			desc: v1.Descriptor{MediaType: manifestType, ArtifactType: BundleMediaType, Size: MaxManifestSize + 1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}},
			want: fmt.Sprintf("larger than the limit of %d bytes", MaxManifestSize),
		},
		"bundle layer": {
			desc: v1.Descriptor{MediaType: manifestType, Size: int64(len(bigLayer)), Digest: bigLayerDigest},
			served: map[v1.Hash]http.HandlerFunc{bigLayerDigest: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", manifestType)
				w.Write(bigLayer)
			}},
			want: fmt.Sprintf("larger than the limit of %d bytes", maxBundleSize),
		},
	} {
		t.Run(name, func(t *testing.T) {
			forReferrers(t, func(t *testing.T, referrers bool) {
				e := newSyncEnv(t, referrers)
				p := e.push(t, simpleModule(t, "v1.1.0"), nil)
				listFirst(t, e, p, referrers, []v1.Descriptor{c.desc}, c.served)
				r := e.sync(t)
				e.wantOutcome(t, r, BadSignature)
				if !strings.Contains(e.logs.String(), c.want) || !strings.Contains(e.logs.String(), c.desc.Digest.String()) {
					t.Errorf("the log does not name the oversized referrer and its limit (%s):\n%s", c.want, e.logs)
				}
			})
		})
	}
}

// TestSyncMissingBundleLayer: a referrer whose bundle layer the registry
// does not have (404) is, like a referrer manifest it does not have, one
// signature that does not verify: the good bundle after it still counts,
// and alone it is bad_signature naming it, not a failure of every pass.
func TestSyncMissingBundleLayer(t *testing.T) {
	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ef", 32)}
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"mediaType":%q,"size":100,"digest":%q}]}`,
		manifestType, BundleMediaType, BundleMediaType, missing))
	d, _, err := v1.SHA256(bytes.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", manifestType)
		w.Write(m)
	}
	forReferrers(t, func(t *testing.T, referrers bool) {
		t.Run("before a good bundle", func(t *testing.T) {
			e := newSyncEnv(t, referrers)
			mod := simpleModule(t, "v1.1.0")
			p := e.push(t, mod, nil)
			signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
			listBefore(t, e, p, referrers, d, serve)
			r := e.sync(t)
			e.wantOutcome(t, r, Recorded)
			e.wantRecorded(t, mod)
		})
		t.Run("alone", func(t *testing.T) {
			e := newSyncEnv(t, referrers)
			p := e.push(t, simpleModule(t, "v1.1.0"), nil)
			listBefore(t, e, p, referrers, d, serve)
			r := e.sync(t)
			e.wantOutcome(t, r, BadSignature)
			if !r.OK() || !strings.Contains(e.logs.String(), d.String()) {
				t.Errorf("report %+v, want OK and the log to name the referrer\n%s", r, e.logs)
			}
		})
	})
}

// TestSyncUnreadableReferrersTag: a fallback tag sha256-<hex> holding what
// is not a referrers index, which anyone who may push can put there, is
// one signature that does not verify, named in the bad_signature line, as
// a .sig tag holding what is not a signature image is
// (TestSyncUnreadableSignatureTag), not a failure of every pass. The
// registry failing to serve the tag still fails the artifact.
func TestSyncUnreadableReferrersTag(t *testing.T) {
	fallback := func(e *syncEnv, p *Pushed, serve http.HandlerFunc) {
		tag := "/manifests/sha256-" + strings.TrimPrefix(p.Ref.DigestStr(), "sha256:")
		e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, tag) {
				return false
			}
			serve(w, r)
			return true
		})
	}
	for name, body := range map[string]string{
		"not an index": `{"schemaVersion":2,"mediaType":"` + indexType + `","manifests":"none"}`,
		"not JSON":     `<html>no</html>`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newSyncEnv(t, false)
			p := e.push(t, simpleModule(t, "v1.1.0"), nil)
			fallback(e, p, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", indexType)
				w.Write([]byte(body))
			})
			r := e.sync(t)
			e.wantOutcome(t, r, BadSignature)
			tag := "sha256-" + strings.TrimPrefix(p.Ref.DigestStr(), "sha256:")
			if !r.OK() || !strings.Contains(e.logs.String(), "referrers") {
				t.Errorf("report %+v (failures %v), want OK and the log to name the referrers of %s\n%s", r, r.Failures, tag, e.logs)
			}
		})
	}
	t.Run("unavailable", func(t *testing.T) {
		e := newSyncEnv(t, false)
		p := e.push(t, simpleModule(t, "v1.1.0"), nil)
		fallback(e, p, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
		r := e.hostileSync(t)
		e.wantOutcome(t, r, Failed)
		if len(r.Failures) != 1 {
			t.Errorf("failures %v, want the pass failed on the registry's 503", r.Failures)
		}
	})
}
