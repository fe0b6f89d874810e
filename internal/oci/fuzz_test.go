package oci

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/module"
)

// FuzzParseManifest: any bytes a registry serves either fail to parse or
// give an artifact whose every field the format allows, which a
// case-sensitive reading of the one JSON value reads alike (sameReading),
// and which round-trips through NewManifest.
func FuzzParseManifest(f *testing.F) {
	f.Add(goodManifest(f, nil))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.sumd.gomodule.v1","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[],"annotations":{"dev.sumd.module.path":"example.com/m","dev.sumd.module.version":"v1.0.0"}}`))
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.sumd.gomodule.zip.v1+zip","digest":"sha256:00","size":1}]}`))
	f.Add([]byte(`null`))
	f.Add(append(goodManifest(f, nil), "{}"...))
	f.Add([]byte(strings.Replace(string(goodManifest(f, nil)), `"layers"`, `"Layers"`, 1)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := ParseManifest(raw)
		if err != nil {
			return
		}
		if err := sameReading(raw, a); err != nil {
			t.Fatalf("accepted %q: %v", raw, err)
		}
		if err := module.Check(a.Module.Path, a.Module.Version); err != nil {
			t.Fatalf("accepted module %s: %v", a.Module, err)
		}
		if a.Mod.MediaType != ModMediaType || a.Zip.MediaType != ZipMediaType || a.Mod.Size < 0 || a.Zip.Size < 0 {
			t.Fatalf("accepted layers %+v %+v", a.Mod, a.Zip)
		}
		again, err := json.Marshal(NewManifest(a.Module, a.Mod, a.Zip))
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseManifest(again)
		if err != nil || b.Module != a.Module || b.Mod.Digest != a.Mod.Digest || b.Zip.Digest != a.Zip.Digest {
			t.Fatalf("round trip: %+v, %v; want %+v", b, err, a)
		}
	})
}

// sameReading checks that raw, read as a parser that matches keys exactly
// and refuses data after the value would read it (json.Unmarshal into
// maps, keeping the last of a duplicate key), names a's module and layers.
func sameReading(raw []byte, a *Artifact) error {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	var g map[string]any
	if err := json.Unmarshal(raw, &g); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	if _, ok := g["annotations"]; !ok && len(m.Annotations) > 0 {
		return errors.New("annotations under a key not spelled annotations")
	}
	if m.Annotations[PathAnnotation] != a.Module.Path || m.Annotations[VersionAnnotation] != a.Module.Version {
		return fmt.Errorf("annotations %v, parsed as %s", m.Annotations, a.Module)
	}
	layers, _ := g["layers"].([]any)
	var digests []string
	for _, l := range layers {
		if l, ok := l.(map[string]any); ok {
			d, _ := l["digest"].(string)
			digests = append(digests, d)
		}
	}
	if !slices.Contains(digests, a.Mod.Digest.String()) || !slices.Contains(digests, a.Zip.Digest.String()) {
		return fmt.Errorf("layers %v, parsed as %s and %s", digests, a.Mod.Digest, a.Zip.Digest)
	}
	return nil
}

// repoName is the whole OCI repository name grammar (distribution-spec).
var repoName = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// FuzzRepositoryName: every valid module path maps to a valid repository
// name, or to an error naming why; and tags round-trip.
func FuzzRepositoryName(f *testing.F) {
	for _, p := range []string{"example.com/m", "example.com/A~b/_c_", "gopkg.in/yaml.v3", "x.y/a--b..c/v2", "example.com/_"} {
		f.Add(p, "v1.2.3-pre+incompatible")
	}
	f.Fuzz(func(t *testing.T, path, version string) {
		name, err := RepositoryName("gomod", path)
		if err != nil {
			if module.CheckPath(path) == nil && !strings.Contains(err.Error(), "no letter or digit") {
				t.Fatalf("RepositoryName(%q): %v", path, err)
			}
			return
		}
		if !repoName.MatchString(name) {
			t.Fatalf("RepositoryName(%q) = %q, not a valid repository name", path, name)
		}
		if tag, err := Tag(version); err == nil {
			if v, ok := VersionOfTag(tag); ok && v != version {
				t.Fatalf("VersionOfTag(Tag(%q)) = %q", version, v)
			}
		}
	})
}

// FuzzVersionOfTag: a tag sync reads is always a canonical version that
// Tag maps back to the same tag.
func FuzzVersionOfTag(f *testing.F) {
	for _, s := range []string{"v1.0.0", "v2.0.0_incompatible", "sha256-00.sig", "latest", "v1.0.0-a_b", "v10.0.0+incompatible"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		v, ok := VersionOfTag(tag)
		if !ok {
			return
		}
		if module.CanonicalVersion(v) != v {
			t.Fatalf("VersionOfTag(%q) = %q, not canonical", tag, v)
		}
		if back, err := Tag(v); err == nil && back != tag {
			t.Fatalf("Tag(VersionOfTag(%q)) = %q", tag, back)
		}
	})
}

// FuzzParseSources: -registry and -repository values are refused, or give
// sources that print back as given and whose repositories lie under their
// prefix and are valid repository paths.
func FuzzParseSources(f *testing.F) {
	f.Add("registry.example.com/gomod\n127.0.0.1:5000", "registry.example.com/gomod/example.com/m")
	f.Add("localhost:5000/a/b\nlocalhost:5000/a", "localhost:5000/a/b/c\nlocalhost:5000/a/x")
	f.Add("https://r.example", "")
	f.Add("R.example/UPPER", "r.example/other")
	f.Fuzz(func(t *testing.T, registries, repositories string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, "\n")
		}
		sources, err := ParseSources(split(registries), split(repositories))
		if err != nil {
			return
		}
		for _, s := range sources {
			back, err := parseSource(s.String())
			if err != nil || back.Registry.Name() != s.Registry.Name() || back.Prefix != s.Prefix {
				t.Fatalf("source %q does not parse back: %+v, %v", s, back, err)
			}
			for _, repo := range s.Repositories {
				if !repoName.MatchString(repo) || s.Prefix != "" && !strings.HasPrefix(repo, s.Prefix+"/") {
					t.Fatalf("source %q got repository %q", s, repo)
				}
			}
		}
	})
}

// FuzzBundleLayer: a referrer manifest yields a layer only if it has
// exactly one, of a Sigstore bundle media type.
func FuzzBundleLayer(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","size":10,"digest":"sha256:` + strings.Repeat("a", 64) + `"}]}`))
	f.Add([]byte(`{"layers":[{},{}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		l, ok := bundleLayer(raw)
		if ok && !strings.HasPrefix(string(l.MediaType), bundlePrefix) {
			t.Fatalf("bundleLayer(%q) = %+v", raw, l)
		}
	})
}

// FuzzCheckBundle: a Sigstore bundle from a registry either fails to parse
// or verify, or it verifies for one artifact digest only: the signature
// binds the digest. The seed is a bundle signed with the test key.
func FuzzCheckBundle(f *testing.F) {
	sv, pub := fuzzKey(f)
	key, err := LoadPublicKey(writeFuzzFile(f, "cosign.pub", pub))
	if err != nil {
		f.Fatal(err)
	}
	digest := sha256.Sum256([]byte("artifact"))
	f.Add(bundleJSON(f, hex.EncodeToString(digest[:]), sv, CosignSignPredicateType))
	f.Add(bundleJSON(f, hex.EncodeToString(digest[:]), sv, "https://example.com/sbom"))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxBundleSize {
			return // fetchBundle never reads more
		}
		b := &bundle.Bundle{}
		if b.UnmarshalJSON(data) != nil || checkBundle(key, b, digest[:]) != nil {
			return
		}
		other := digest
		other[0] ^= 1
		if err := checkBundle(key, b, other[:]); err == nil {
			t.Fatalf("bundle %q verifies for two digests", data)
		}
	})
}

// FuzzLoadPublicKey: a -cosign-key file is refused or loads; it never
// panics whatever PEM it holds.
func FuzzLoadPublicKey(f *testing.F) {
	_, pub := fuzzKey(f)
	f.Add(pub)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"))
	file := writeFuzzFile(f, "cosign.pub", nil) // a worker runs one input at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadPublicKey(file)
		if err == nil && (k.verifier == nil || k.bundles == nil) {
			t.Fatalf("LoadPublicKey(%q) = %+v", data, k)
		}
	})
}

// fuzzKey returns a new ECDSA P-256 signer, as cosign generate-key-pair
// makes, and its PEM public key: cheaper than the encrypted test keys,
// which every fuzz worker would decrypt.
func fuzzKey(f *testing.F) (signature.SignerVerifier, []byte) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	return sv, pub
}

func writeFuzzFile(f *testing.F, name string, data []byte) string {
	file := filepath.Join(f.TempDir(), name)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		f.Fatal(err)
	}
	return file
}
