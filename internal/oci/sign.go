package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
)

// ParsePrivateKey decrypts data, an encrypted cosign private key as
// ReadPrivateKey returns it (cosign.key, as `cosign generate-key-pair`
// writes it), with password, as cosign does with $COSIGN_PASSWORD.
func ParsePrivateKey(data, password []byte) (signature.SignerVerifier, error) {
	sv, err := cosign.LoadPrivateKey(data, password, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to load the cosign private key: %w", err)
	}
	return sv, nil
}

// ReadPrivateKey reads file and checks that it holds an encrypted cosign
// private key, the PEM block cosign generate-key-pair writes, so that a
// missing file or a public key is named before a password is asked for.
func ReadPrivateKey(file string) ([]byte, error) {
	data, err := readLimited(file, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read cosign private key: %w", err)
	}
	switch b, _ := pem.Decode(data); {
	case b == nil:
		return nil, fmt.Errorf("%s holds no PEM block: not a cosign private key", file)
	case b.Type != cosign.CosignPrivateKeyPemType && b.Type != cosign.SigstorePrivateKeyPemType:
		return nil, fmt.Errorf("%s holds a %q PEM block, not an encrypted cosign private key", file, b.Type)
	}
	return data, nil
}

// Sign signs the manifest ref as `cosign sign --key K --tlog-upload=false`
// of cosign v2 does, with the cosign library's own pieces: a "simple
// signing" payload naming ref's digest, signed by sv, stored as a layer of
// the signature image at tag sha256-<hex>.sig with the base64 signature in
// annotation dev.cosignproject.cosign/signature. Signatures already there
// are kept, and signing twice with one key adds no duplicate. It returns
// the signature tag.
func Sign(ctx context.Context, ref name.Digest, sv signature.SignerVerifier, r Remote) (name.Tag, error) {
	payload, err := (&sigpayload.Cosign{Image: ref}).MarshalJSON()
	if err != nil {
		return name.Tag{}, fmt.Errorf("failed to build signature payload: %w", err)
	}
	sig, err := sv.SignMessage(bytes.NewReader(payload), options.WithContext(ctx))
	if err != nil {
		return name.Tag{}, fmt.Errorf("failed to sign %s: %w", ref, err)
	}
	ociSig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(sig))
	if err != nil {
		return name.Tag{}, fmt.Errorf("failed to build signature: %w", err)
	}
	o := ociremote.WithRemoteOptions(r.options(ctx)...)
	se, err := ociremote.SignedEntity(ref, o)
	if err != nil {
		return name.Tag{}, fmt.Errorf("failed to read %s: %w", ref, err)
	}
	se, err = mutate.AttachSignatureToEntity(se, ociSig, mutate.WithDupeDetector(cremote.NewDupeDetector(sv)))
	if err != nil {
		return name.Tag{}, fmt.Errorf("failed to attach signature: %w", err)
	}
	if err := ociremote.WriteSignatures(ref.Repository, se, o); err != nil {
		return name.Tag{}, fmt.Errorf("failed to push signature of %s: %w", ref, err)
	}
	return ociremote.SignatureTag(ref, o)
}
