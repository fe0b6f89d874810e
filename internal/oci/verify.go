package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cosignoci "github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// maxKeyFile caps a public key file: a PEM public key is well under 1 KiB.
const maxKeyFile = 64 << 10

// A PublicKey is a cosign public key (cosign.pub) whose signatures sync
// accepts.
type PublicKey struct {
	File string // where it was read from, for logs
	// Scope is HOST[:PORT][/PATH] if the key is bound to the repositories
	// at or under PATH of that registry (ParseKey), "" if it counts for
	// every source.
	Scope          string
	registry, path string             // Scope parsed: registry name, repository path
	verifier       signature.Verifier // classic signatures
	bundles        *verify.Verifier   // Sigstore bundles, trusting this key alone
}

// LoadPublicKey reads a PEM public key file as `cosign generate-key-pair`
// writes it. The signature algorithm follows from the key as cosign picks
// it (ECDSA P-256 with SHA-256 for cosign's default keys).
func LoadPublicKey(file string) (*PublicKey, error) {
	data, err := readLimited(file, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read cosign public key: %w", err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse cosign public key %s: %w (want the PEM cosign.pub written by cosign generate-key-pair)", file, err)
	}
	v, err := signature.LoadDefaultVerifier(pub, *cosign.GetDefaultLoadOptions(nil)...)
	if err != nil {
		return nil, fmt.Errorf("failed to load cosign public key %s: %w", file, err)
	}
	bv, err := bundleVerifier(v)
	if err != nil {
		return nil, fmt.Errorf("failed to load cosign public key %s: %w", file, err)
	}
	return &PublicKey{File: file, verifier: v, bundles: bv}, nil
}

// bundleVerifier returns a sigstore-go verifier that trusts v alone,
// whatever key hint a bundle gives, and needs no timestamp: key-based,
// offline verification without a transparency log (no Rekor, no Fulcio).
func bundleVerifier(v signature.Verifier) (*verify.Verifier, error) {
	key := root.NewExpiringKey(v, time.Time{}, time.Time{})
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
	return verify.NewVerifier(tm, verify.WithNoObserverTimestamps())
}

func readLimited(file string, limit int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", file, limit)
	}
	return data, err
}

// errUnsigned means no signature of either format was found; errBadSignature
// that signatures were found but none verifies with a configured key.
var (
	errUnsigned     = errors.New("no cosign signature found (neither a sha256-<hex>.sig tag nor a Sigstore bundle referrer)")
	errBadSignature = errors.New("no signature verifies with the configured cosign keys")
)

// ErrRetagged is wrapped by the error of an artifact whose version the log
// holds while its tag holds content that no configured key signed
// (unsigned, or signed with another key) and that is not what was
// recorded: layers that hash to other hashes than the log's, or not as a
// module (fetched once per manifest: the sync state remembers the verdict
// for later passes). The version was re-tagged after it was recorded, or
// pushed unsigned beside the recorded one. It is a conflict
// (Report.Conflicts), not the plain unsigned or bad_signature of a release
// still awaiting its signature. The recorded content signed only by a key
// since removed, or pushed again in another manifest, is not a re-tag: it
// is present.
var ErrRetagged = errors.New("the version is recorded, and its tag holds other content, which no configured key signed: a re-tag of a recorded version")

// A signatureCheck is the outcome of looking for one format's signatures.
type signatureCheck struct {
	found   int      // signatures seen
	key     string   // file of the key that verified one; "" if none did
	reasons []string // why the others failed, for the log line
}

// verifySignatures checks that a signature over digest d verifies with one
// of keys, trying cosign v2's format first, then Sigstore bundles. It
// returns the format and key file that verified, or an error wrapping
// errUnsigned or errBadSignature, or a registry failure.
func verifySignatures(ctx context.Context, c *repoClient, keys []*PublicKey, d v1.Hash) (format, key string, err error) {
	ref := c.repo.Digest(d.String())
	classic, err := verifyClassic(ctx, c, keys, ref)
	if err != nil {
		return "", "", err
	}
	if classic.key != "" {
		return "cosign", classic.key, nil
	}
	bundles, err := verifyBundles(ctx, c, keys, ref)
	if err != nil {
		return "", "", err
	}
	if bundles.key != "" {
		return "bundle", bundles.key, nil
	}
	if classic.found+bundles.found == 0 {
		return "", "", errUnsigned
	}
	reasons := slices.Concat(classic.reasons, bundles.reasons)
	return "", "", fmt.Errorf("%w: %d signature(s) found: %s", errBadSignature, classic.found+bundles.found, strings.Join(reasons, "; "))
}

// Caps on the classic signatures of one artifact: a simple-signing payload
// is a few hundred bytes, and a release signed by a few keys has a few.
const (
	maxClassicSignatures = 100
	maxPayloadSize       = 64 << 10
)

// verifyClassic checks the "simple signing" signatures at the tag
// sha256-<hex>.sig with the cosign library, as `cosign verify --key
// --insecure-ignore-tlog` does: the signature over the payload, and
// (SimpleClaimVerifier) that the payload names digest ref.
func verifyClassic(ctx context.Context, c *repoClient, keys []*PublicKey, ref name.Digest) (signatureCheck, error) {
	var sc signatureCheck
	o := ociremote.WithRemoteOptions(c.opts...)
	tag, err := ociremote.SignatureTag(ref, o)
	if err != nil {
		return sc, fmt.Errorf("failed to name the signature tag of %s: %w", ref, err)
	}
	list, err := classicSignatures(tag, o)
	switch {
	case err != nil && failing(err):
		return sc, fmt.Errorf("failed to read signatures %s: %w", tag, err)
	case err != nil:
		// The tag holds what is not a signature image (an index, a
		// manifest that does not parse, more than cosign's 1000 layers,
		// over the response limits): whoever may push can put it there,
		// so it is one signature that does not verify, and the
		// artifact's bundles are still checked. Were it a failure, it
		// would hide them on every pass.
		sc.found++
		sc.reasons = append(sc.reasons, fmt.Sprintf("%s holds no readable cosign signatures: %v", tag.TagStr(), err))
		return sc, nil
	}
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return sc, err
	}
	for i, sig := range list {
		if i == maxClassicSignatures {
			sc.reasons = append(sc.reasons, fmt.Sprintf("only the first %d signatures at %s were inspected", maxClassicSignatures, tag.TagStr()))
			break
		}
		// A simple-signing payload is a few hundred bytes; cosign would
		// read up to 128 MiB of each of 1,000 layers, twice (once here,
		// once to verify), from a registry anyone may control. A
		// negative size is one signature refused too, not a registry
		// failure that would hide the artifact's other signatures on
		// every pass (cosign refuses to read it).
		n, err := sig.Size()
		switch {
		case err != nil:
			sc.found++
			sc.reasons = append(sc.reasons, fmt.Sprintf("%s: the size of a signature payload cannot be read: %v", tag.TagStr(), err))
			continue
		case n < 0 || n > maxPayloadSize:
			sc.found++
			sc.reasons = append(sc.reasons, fmt.Sprintf("%s: a signature payload of %d bytes, outside the 0 to %d a signature takes", tag.TagStr(), n, maxPayloadSize))
			continue
		}
		// Read the payload first, against the digest and size the .sig
		// manifest gives, so that a registry failure is reported as one,
		// and a payload the registry lacks or serves with other bytes
		// (the content's fault) as a signature that does not verify:
		// were it a failure, it would hide the artifact's other
		// signatures, a valid bundle among them, on every pass.
		err = readPayload(ctx, c, sig, n)
		switch {
		case isNotFound(err), unreadable(err):
			sc.found++
			sc.reasons = append(sc.reasons, fmt.Sprintf("%s: the signature payload cannot be read: %v", tag.TagStr(), err))
			continue
		case err != nil:
			return sc, fmt.Errorf("failed to read signature payload at %s: %w", tag, err)
		}
		sc.found++
		for _, k := range keys {
			co := &cosign.CheckOpts{
				SigVerifier:   k.verifier,
				ClaimVerifier: cosign.SimpleClaimVerifier,
				IgnoreTlog:    true,
				IgnoreSCT:     true,
			}
			if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err != nil {
				sc.reasons = append(sc.reasons, fmt.Sprintf("%s with %s: %v", tag.TagStr(), k.File, err))
				continue
			}
			sc.key = k.File
			return sc, nil
		}
	}
	return sc, nil
}

// classicSignatures returns the signatures at the .sig tag, none if the
// tag does not exist.
func classicSignatures(tag name.Tag, o ociremote.Option) ([]cosignoci.Signature, error) {
	sigs, err := ociremote.Signatures(tag, o) // a missing tag is no signatures
	if err != nil {
		return nil, err
	}
	return sigs.Get()
}

// failing reports whether err, from reading what a tag holds, is the
// registry or the network failing (an error status, no connection, no
// answer in time, a body cut short) rather than the tag holding something
// that cannot be read as what it should be, or too much of it.
func failing(err error) bool {
	var te *transport.Error
	var ue *url.Error
	var ne net.Error
	var large *errResponseTooLarge
	switch {
	case errors.As(err, &large):
		return false
	case errors.As(err, &te), errors.As(err, &ue), errors.As(err, &ne):
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF)
}

// readPayload reads the payload of sig through c, checking it against the
// digest and size of its descriptor in the .sig manifest: cosign's own read
// tells neither a missing blob nor one of other bytes apart from a failing
// registry. cosign reads it again to verify it.
func readPayload(ctx context.Context, c *repoClient, sig cosignoci.Signature, size int64) error {
	d, err := sig.Digest()
	if err != nil {
		return &errTampered{fmt.Sprintf("the digest of a signature payload cannot be read: %v", err)}
	}
	return c.blob(ctx, v1.Descriptor{Digest: d, Size: size}, maxPayloadSize, io.Discard, "signature payload")
}
