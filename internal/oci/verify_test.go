package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// payloadOf returns the descriptor of the payload layer of p's classic
// signature (the sha256-<hex>.sig tag).
func payloadOf(t *testing.T, p *Pushed) v1.Descriptor {
	t.Helper()
	img, err := remote.Image(p.Signature, remote.WithAuthFromKeychain(testRemote.keychain()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("signature %s has %d layers, want 1", p.Signature, len(m.Layers))
	}
	return m.Layers[0]
}

// TestSyncUnreadableClassicPayload: a classic signature whose payload blob
// the registry does not have, or serves with other bytes, is one signature
// that does not verify: the artifact's valid bundle still counts, and an
// artifact with no other signature is bad_signature, not a failure of every
// pass. A registry failing to serve the payload (5xx) still fails the pass.
func TestSyncUnreadableClassicPayload(t *testing.T) {
	bad := map[string]func(e *syncEnv, payload v1.Descriptor){
		"missing": func(e *syncEnv, payload v1.Descriptor) {
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "/blobs/"+payload.Digest.String()) {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"Unknown blob"}]}`))
				return true
			})
		},
		"mismatched": func(e *syncEnv, payload v1.Descriptor) {
			e.reg.blobs.tamper(payload.Digest, make([]byte, payload.Size))
		},
		"short": func(e *syncEnv, payload v1.Descriptor) {
			e.reg.blobs.tamper(payload.Digest, []byte("{}"))
		},
	}
	forReferrers(t, func(t *testing.T, referrers bool) {
		for name, spoil := range bad {
			t.Run(name, func(t *testing.T) {
				e := newSyncEnv(t, referrers)
				mod := simpleModule(t, "v1.1.0")
				p := e.push(t, mod, e.key.sv)
				signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
				spoil(e, payloadOf(t, p))
				r := e.sync(t)
				e.wantOutcome(t, r, Recorded)
				e.wantRecorded(t, mod)
				if !r.OK() || !strings.Contains(e.logs.String(), "signature=bundle") {
					t.Errorf("report %+v, want OK and the bundle to be what verified\n%s", r, e.logs)
				}
			})
			t.Run(name+" alone", func(t *testing.T) {
				e := newSyncEnv(t, referrers)
				p := e.push(t, simpleModule(t, "v1.1.0"), e.key.sv)
				payload := payloadOf(t, p)
				spoil(e, payload)
				r := e.sync(t)
				e.wantOutcome(t, r, BadSignature)
				if !r.OK() || !strings.Contains(e.logs.String(), payload.Digest.String()) {
					t.Errorf("report %+v, want OK and the log to name the unreadable payload\n%s", r, e.logs)
				}
			})
		}
		t.Run("unavailable", func(t *testing.T) {
			e := newSyncEnv(t, referrers)
			mod := simpleModule(t, "v1.1.0")
			p := e.push(t, mod, e.key.sv)
			signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
			payload := payloadOf(t, p)
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "/blobs/"+payload.Digest.String()) {
					return false
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			})
			r := e.sync(t)
			e.wantOutcome(t, r, Failed)
			if len(r.Failures) != 1 || e.log.size() != 0 {
				t.Errorf("failures %v, %d records: want the pass failed and nothing recorded", r.Failures, e.log.size())
			}
		})
	})
}

// TestSyncUnreadableSignatureTag: a sha256-<hex>.sig tag holding what is
// not a signature image — an image index, a manifest that does not parse,
// more layers than cosign reads — is the content's fault (anyone who may
// push can put it there), so it counts as a signature that does not verify:
// the artifact's valid bundle still counts, and an artifact with no other
// signature is bad_signature naming the tag, not a failure of every pass.
// The registry refusing to serve the tag still fails the artifact.
func TestSyncUnreadableSignatureTag(t *testing.T) {
	layer := `{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":2,"digest":"sha256:` + strings.Repeat("ab", 32) + `"}`
	manyLayers := `{"schemaVersion":2,"mediaType":"` + manifestType + `","config":` + layer + `,"layers":[` + layer + strings.Repeat(","+layer, 1000) + `]}`
	bad := map[string]struct{ contentType, body string }{
		"index":           {indexType, `{"schemaVersion":2,"mediaType":"` + indexType + `","manifests":[]}`},
		"not a manifest":  {manifestType, `{"schemaVersion":2,"mediaType":"` + manifestType + `","layers":"none"}`},
		"too many layers": {manifestType, manyLayers},
	}
	forReferrers(t, func(t *testing.T, referrers bool) {
		for name, sig := range bad {
			spoil := func(e *syncEnv) {
				e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
					if !strings.Contains(r.URL.Path, "/manifests/sha256-") || !strings.HasSuffix(r.URL.Path, ".sig") {
						return false
					}
					sum := sha256.Sum256([]byte(sig.body))
					w.Header().Set("Content-Type", sig.contentType)
					w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
					w.Header().Set("Content-Length", strconv.Itoa(len(sig.body)))
					if r.Method == http.MethodGet {
						w.Write([]byte(sig.body))
					}
					return true
				})
			}
			t.Run(name, func(t *testing.T) {
				e := newSyncEnv(t, referrers)
				mod := simpleModule(t, "v1.1.0")
				p := e.push(t, mod, e.key.sv)
				signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
				spoil(e)
				r := e.sync(t)
				e.wantOutcome(t, r, Recorded)
				e.wantRecorded(t, mod)
				if !r.OK() || !strings.Contains(e.logs.String(), "signature=bundle") {
					t.Errorf("report %+v (failures %v), want OK and the bundle to be what verified\n%s", r, r.Failures, e.logs)
				}
			})
			t.Run(name+" alone", func(t *testing.T) {
				e := newSyncEnv(t, referrers)
				p := e.push(t, simpleModule(t, "v1.1.0"), e.key.sv)
				spoil(e)
				r := e.sync(t)
				e.wantOutcome(t, r, BadSignature)
				if !r.OK() || !strings.Contains(e.logs.String(), p.Signature.TagStr()) {
					t.Errorf("report %+v (failures %v), want OK and the log to name the signature tag\n%s", r, r.Failures, e.logs)
				}
			})
		}
		t.Run("unavailable", func(t *testing.T) {
			e := newSyncEnv(t, referrers)
			p := e.push(t, simpleModule(t, "v1.1.0"), e.key.sv)
			signBundle(t, p.Ref, e.key.sv, CosignSignPredicateType)
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "/manifests/"+p.Signature.TagStr()) {
					return false
				}
				w.WriteHeader(http.StatusForbidden)
				return true
			})
			r := e.sync(t)
			e.wantOutcome(t, r, Failed)
			if len(r.Failures) != 1 || !IsDenied(r.Failures[0]) || e.log.size() != 0 {
				t.Errorf("failures %v, %d records: want the pass failed on the registry's 403 and nothing recorded", r.Failures, e.log.size())
			}
		})
	})
}
