package oci

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// Sigstore bundles as cosign v3 attaches them (PROTOCOL.md §4).
const (
	// BundleMediaType is the artifactType of cosign v3's signature
	// referrers and the media type of their one layer.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// CosignSignPredicateType is the in-toto predicate type of the
	// statement `cosign sign` signs. Other predicates (SBOMs, provenance
	// attestations made with the same key) are not signatures of the
	// artifact and do not count.
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"

	maxReferrers  = 100     // referrers inspected per artifact
	maxBundleSize = 1 << 20 // bytes of one bundle
	bundlePrefix  = "application/vnd.dev.sigstore.bundle"
)

// verifyBundles checks the Sigstore bundles that refer to ref. Referrers
// are listed unfiltered, through the referrers API or, where the registry
// has none, the fallback tag sha256-<hex> (go-containerregistry does
// both), and the manifest of each that may be a bundle (mayBeBundle) is
// inspected: some registries (go-containerregistry's own among them) report
// a referrer's artifactType from its config media type, which for cosign's
// referrers is the empty one. maxReferrers caps the referrers inspected,
// not those passed over. A listing that cannot be read is one signature
// that does not verify; only the registry failing to serve it is an error.
func verifyBundles(ctx context.Context, c *repoClient, keys []*PublicKey, ref name.Digest) (signatureCheck, error) {
	var sc signatureCheck
	im, err := listReferrers(c, ref)
	switch {
	case err != nil && failing(err):
		return sc, fmt.Errorf("failed to list the referrers of %s: %w", ref, err)
	case err != nil:
		// The listing is not a referrers index, or one over the response
		// limits: whoever may push can make either (the fallback tag, or
		// referrers by the million), so it is one signature that does not
		// verify, as a .sig tag holding what is not a signature image is.
		// Were it a failure, it would fail the artifact on every pass.
		sc.found++
		sc.reasons = append(sc.reasons, fmt.Sprintf("the referrers of %s (the referrers API's listing, or the fallback tag %s) cannot be read: %v",
			ref.DigestStr(), strings.Replace(ref.DigestStr(), ":", "-", 1), err))
		return sc, nil
	}
	digest, err := hex.DecodeString(ref.DigestStr()[len("sha256:"):])
	if err != nil {
		return sc, err
	}
	inspected := 0
	for _, desc := range im.Manifests {
		if !mayBeBundle(desc) {
			continue // costs no request, so does not count
		}
		if inspected == maxReferrers {
			sc.reasons = append(sc.reasons, fmt.Sprintf("only the first %d referrers were inspected", maxReferrers))
			break
		}
		inspected++
		b, err := fetchBundle(ctx, c, desc)
		if err != nil {
			return sc, err
		}
		if b == nil {
			continue // another kind of referrer
		}
		sc.found++
		if b.err != nil {
			sc.reasons = append(sc.reasons, fmt.Sprintf("bundle %s: %v", b.ref, b.err))
			continue
		}
		for _, k := range keys {
			if err := checkBundle(k, b.bundle, digest); err != nil {
				sc.reasons = append(sc.reasons, fmt.Sprintf("bundle %s with %s: %v", b.ref, k.File, err))
				continue
			}
			sc.key = k.File
			return sc, nil
		}
	}
	return sc, nil
}

// listReferrers lists the referrers of ref, unfiltered.
func listReferrers(c *repoClient, ref name.Digest) (*v1.IndexManifest, error) {
	idx, err := remote.Referrers(ref, c.opts...)
	if err != nil {
		return nil, err
	}
	return idx.IndexManifest()
}

// A fetchedBundle is a referrer holding a Sigstore bundle: the parsed
// bundle, or why it could not be read (a tampered or oversized blob, bad
// JSON), which makes it a signature that does not verify.
type fetchedBundle struct {
	ref    string
	bundle *bundle.Bundle
	err    error
}

// fetchBundle returns the bundle a referrer holds, nil if the referrer is
// not a Sigstore bundle, or a registry failure. A referrer whose manifest
// or bundle layer the registry does not have (garbage-collected, or listed
// in the fallback tag by anyone who may push), lists over MaxManifestSize,
// or serves with other bytes or too many is a bundle that cannot be read,
// named in the artifact's reasons: were it a failure, it would hide the
// artifact's good signatures on every pass; were it passed over, an
// artifact signed only by it would be called unsigned.
func fetchBundle(ctx context.Context, c *repoClient, desc v1.Descriptor) (*fetchedBundle, error) {
	if desc.Size > MaxManifestSize {
		return &fetchedBundle{ref: desc.Digest.String(), err: &errTooLarge{"referrer manifest", MaxManifestSize}}, nil
	}
	raw, err := c.manifest(ctx, desc.Digest)
	switch {
	case isNotFound(err), unreadable(err):
		return &fetchedBundle{ref: desc.Digest.String(), err: err}, nil
	case err != nil:
		return nil, err
	}
	layer, ok := bundleLayer(raw)
	if !ok {
		return nil, nil
	}
	fb := &fetchedBundle{ref: desc.Digest.String()}
	var buf bytes.Buffer
	err = c.blob(ctx, layer, maxBundleSize, &buf, "signature bundle")
	switch {
	case isNotFound(err), unreadable(err):
		fb.err = err
	case err != nil:
		return nil, err
	default:
		b := &bundle.Bundle{}
		if fb.err = b.UnmarshalJSON(buf.Bytes()); fb.err == nil {
			fb.bundle = b
		}
	}
	return fb, nil
}

// mayBeBundle reports whether the referrer desc lists may hold a Sigstore
// bundle, and is to be inspected: an OCI manifest whose artifactType, as
// the listing gives it, is a bundle's, none, or the empty config's (some
// registries give the config media type, and cosign's is the empty one).
// Any other (an image index, an SBOM, an attestation of another tool) is
// passed over without a request, so that however many there are, they do
// not push the artifact's bundles past maxReferrers.
func mayBeBundle(desc v1.Descriptor) bool {
	if desc.MediaType != types.OCIManifestSchema1 {
		return false
	}
	at := desc.ArtifactType
	return at == "" || at == string(types.OCIEmptyJSON) || strings.HasPrefix(at, bundlePrefix)
}

// unreadable reports whether err says the registry served other bytes than
// the digest names, or too many: the content's fault, not the registry's.
func unreadable(err error) bool {
	var tampered *errTampered
	var tooLarge *errTooLarge
	return errors.As(err, &tampered) || errors.As(err, &tooLarge)
}

// bundleLayer returns the bundle layer of a referrer manifest, if it is a
// Sigstore bundle: artifactType, config or its one layer says so.
func bundleLayer(raw []byte) (v1.Descriptor, bool) {
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) != 1 {
		return v1.Descriptor{}, false
	}
	l := m.Layers[0]
	if !strings.HasPrefix(string(l.MediaType), bundlePrefix) {
		return v1.Descriptor{}, false
	}
	return l, true
}

// checkBundle verifies b with sigstore-go against key k alone: a DSSE
// envelope signed by k over an in-toto statement whose subject is digest
// (sha256) and whose predicate type is cosign's signature predicate.
func checkBundle(k *PublicKey, b *bundle.Bundle, digest []byte) error {
	policy := verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), verify.WithKey())
	res, err := k.bundles.Verify(b, policy)
	if err != nil {
		return err
	}
	switch {
	case res.Statement == nil:
		return errors.New("bundle signs a message, not an in-toto statement as cosign sign does")
	case res.Statement.PredicateType != CosignSignPredicateType:
		return fmt.Errorf("statement predicate type is %q, want %s", res.Statement.PredicateType, CosignSignPredicateType)
	}
	return nil
}
