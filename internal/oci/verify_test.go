package oci

import (
	"net/http"
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
