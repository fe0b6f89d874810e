package oci

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// testRegistry is go-containerregistry's in-memory registry on httptest,
// with blobs that a test can tamper with after they are pushed, and a
// hostile front a test can put before it.
type testRegistry struct {
	host  string // 127.0.0.1:port: plain http, as go-containerregistry uses for loopback
	blobs *tamperBlobs
	// hostile, if set, sees every request first and answers those it
	// returns true for.
	hostile atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

func newTestRegistry(t *testing.T, referrers bool) *testRegistry {
	t.Helper()
	blobs := &tamperBlobs{BlobHandler: registry.NewInMemoryBlobHandler(), fake: map[string][]byte{}}
	h := registry.New(
		registry.WithReferrersSupport(referrers),
		registry.WithBlobHandler(blobs),
		registry.Logger(log.New(io.Discard, "", 0)),
	)
	reg := &testRegistry{blobs: blobs}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := reg.hostile.Load(); f != nil && (*f)(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	reg.host = strings.TrimPrefix(srv.URL, "http://")
	return reg
}

// turnHostile makes f answer the requests it returns true for.
func (r *testRegistry) turnHostile(f func(w http.ResponseWriter, r *http.Request) bool) {
	r.hostile.Store(&f)
}

// source returns the Source for prefix on r.
func (r *testRegistry) source(t *testing.T, prefix string) *Source {
	t.Helper()
	s, err := parseSource(r.host + "/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tamperBlobs is the in-memory blob store, except that a tampered blob is
// served with other bytes under its old digest.
type tamperBlobs struct {
	registry.BlobHandler
	mu   sync.Mutex
	fake map[string][]byte // digest -> bytes served instead
}

func (b *tamperBlobs) tamper(d v1.Hash, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fake[d.String()] = data
}

func (b *tamperBlobs) Get(ctx context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	b.mu.Lock()
	data, ok := b.fake[h.String()]
	b.mu.Unlock()
	if ok {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	return b.BlobHandler.Get(ctx, repo, h)
}

func (b *tamperBlobs) Stat(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	b.mu.Lock()
	data, ok := b.fake[h.String()]
	b.mu.Unlock()
	if ok {
		return int64(len(data)), nil
	}
	return b.BlobHandler.(registry.BlobStatHandler).Stat(ctx, repo, h)
}

func (b *tamperBlobs) Put(ctx context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	return b.BlobHandler.(registry.BlobPutHandler).Put(ctx, repo, h, rc)
}

// testKey is a cosign key pair written as `cosign generate-key-pair` does.
type testKey struct {
	priv, pub string // cosign.key (encrypted with password), cosign.pub
	sv        signature.SignerVerifier
}

const testPassword = "correct horse"

// testKeyPair is a cosign key pair as cosign writes it, and its signer.
type testKeyPair struct {
	kb *cosign.KeysBytes
	sv signature.SignerVerifier
}

// keyPairs are generated and decrypted once: scrypt makes both slow.
var keyPairs = sync.OnceValues(func() ([]testKeyPair, error) {
	var out []testKeyPair
	for range 2 {
		kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(testPassword), nil })
		if err != nil {
			return nil, err
		}
		sv, err := cosign.LoadPrivateKey(kb.PrivateBytes, []byte(testPassword), nil)
		if err != nil {
			return nil, err
		}
		out = append(out, testKeyPair{kb, sv})
	}
	return out, nil
})

// newKey returns the i-th test key pair (0 or 1), written to a directory.
func newKey(t *testing.T, i int) *testKey {
	t.Helper()
	kps, err := keyPairs()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := &testKey{priv: filepath.Join(dir, "cosign.key"), pub: filepath.Join(dir, "cosign.pub"), sv: kps[i].sv}
	writeTestFile(t, k.priv, kps[i].kb.PrivateBytes)
	writeTestFile(t, k.pub, kps[i].kb.PublicBytes)
	return k
}

func (k *testKey) public(t *testing.T) *PublicKey {
	t.Helper()
	pk, err := LoadPublicKey(k.pub)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func writeTestFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// testModule builds a module zip for m with files (name -> content), as a
// module proxy serves it, and opens it for pushing.
func testModule(t *testing.T, m module.Version, files map[string]string) *Module {
	t.Helper()
	dir := t.TempDir()
	if _, err := testproxy.Build(dir, []testproxy.Module{{Path: m.Path, Version: m.Version, Files: files}}); err != nil {
		t.Fatal(err)
	}
	mod, err := OpenModule(m, testproxy.ZipPath(dir, m))
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

// simpleModule is example.com/m at version with a go.mod and one file.
func simpleModule(t *testing.T, version string) *Module {
	m := module.Version{Path: "example.com/m", Version: version}
	return testModule(t, m, map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", "m.go": "package m\n// " + version + "\n"})
}

// signBundle signs ref as cosign v3 does (a DSSE envelope over an in-toto
// statement of predicateType, subject the digest, in a Sigstore bundle
// v0.3 built by sigstore-go) and attaches it as a referrer with the cosign
// library's writer, which falls back to the sha256-<hex> tag when the
// registry has no referrers API.
func signBundle(t *testing.T, ref name.Digest, sv signature.SignerVerifier, predicateType string) {
	t.Helper()
	data := bundleJSON(t, strings.TrimPrefix(ref.DigestStr(), "sha256:"), sv, predicateType)
	if err := ociremote.WriteAttestationNewBundleFormat(ref, data, predicateType); err != nil {
		t.Fatal(err)
	}
}

// bundleJSON returns a Sigstore bundle, signed with sv, of an in-toto
// statement of predicateType whose subject is the sha256 hexDigest.
func bundleJSON(t testing.TB, hexDigest string, sv signature.SignerVerifier, predicateType string) []byte {
	t.Helper()
	stmt, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"digest": map[string]string{"sha256": hexDigest}}},
		"predicateType": predicateType,
		"predicate":     map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	content := &sign.DSSEData{Data: stmt, PayloadType: "application/vnd.in-toto+json"}
	pb, err := sign.Bundle(content, newKeypair(t, sv), sign.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// keypair adapts a cosign ECDSA P-256 key to sigstore-go's sign.Keypair, as
// cosign v3's internal SignerVerifierKeypair does.
type keypair struct {
	sv  signature.SignerVerifier
	pub crypto.PublicKey
}

var _ sign.Keypair = (*keypair)(nil)

func newKeypair(t testing.TB, sv signature.SignerVerifier) *keypair {
	pub, err := sv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return &keypair{sv: sv, pub: pub}
}

func (k *keypair) GetHashAlgorithm() protocommon.HashAlgorithm {
	return protocommon.HashAlgorithm_SHA2_256
}
func (k *keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
}
func (k *keypair) GetKeyAlgorithm() string        { return "ECDSA" }
func (k *keypair) GetPublicKey() crypto.PublicKey { return k.pub }
func (k *keypair) GetPublicKeyPem() (string, error) {
	p, err := cryptoutils.MarshalPublicKeyToPEM(k.pub)
	return string(p), err
}
func (k *keypair) GetHint() []byte {
	der, _ := x509.MarshalPKIXPublicKey(k.pub)
	sum := sha256.Sum256(der)
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}
func (k *keypair) SignData(ctx context.Context, data []byte) ([]byte, []byte, error) {
	sum := sha256.Sum256(data)
	sig, err := k.sv.SignMessage(bytes.NewReader(data))
	return sig, sum[:], err
}

func mustTag(t *testing.T, ref string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
