package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PushOptions configure Push.
type PushOptions struct {
	Remote Remote
	// Signer, if set, signs the pushed manifest as `cosign sign --key`
	// (cosign v2) does; see Sign.
	Signer signature.SignerVerifier
}

// Pushed is what Push published.
type Pushed struct {
	Ref       name.Digest // repository@sha256:… of the manifest
	Tag       name.Tag    // the version tag pointing at it
	Signature name.Tag    // the signature tag sha256-<hex>.sig; empty if unsigned
}

// Push publishes mod as an artifact in the repository RepositoryName gives
// under dst, tagged with Tag(version): the blobs first, then the manifest,
// then, with a signer, its signature. mod must have been checked by
// OpenModule. Pushing the same module again yields the same digest; a tag
// that holds another manifest already is left alone (*PublishedError).
func Push(ctx context.Context, dst *Source, mod *Module, opts PushOptions) (*Pushed, error) {
	repoName, err := RepositoryName(dst.Prefix, mod.Version.Path)
	if err != nil {
		return nil, err
	}
	tagName, err := Tag(mod.Version.Version)
	if err != nil {
		return nil, err
	}
	repo := dst.Registry.Repo(repoName)
	ro := opts.Remote.options(ctx)
	layers, raw, err := artifact(mod)
	if err != nil {
		return nil, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	p := &Pushed{Tag: repo.Tag(tagName), Ref: repo.Digest(h.String())}
	if err := checkTag(p.Tag, h, ro); err != nil {
		return nil, err
	}
	for _, l := range layers {
		if err := remote.WriteLayer(repo, l, ro...); err != nil {
			return nil, fmt.Errorf("failed to push blob to %s: %w", repo, err)
		}
	}
	if err := remote.Put(p.Tag, rawManifest(raw), ro...); err != nil {
		return nil, fmt.Errorf("failed to push manifest to %s: %w", p.Tag, err)
	}
	if opts.Signer != nil {
		if p.Signature, err = Sign(ctx, p.Ref, opts.Signer, opts.Remote); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// artifact returns the blobs of mod's artifact (the empty config and both
// layers) and its manifest, as Push uploads them.
func artifact(mod *Module) ([]v1.Layer, []byte, error) {
	zip, err := newFileLayer(mod.Zip, ZipMediaType)
	if err != nil {
		return nil, nil, err
	}
	layers := []v1.Layer{
		static.NewLayer([]byte("{}"), EmptyMediaType),
		static.NewLayer(mod.GoMod, ModMediaType),
		zip,
	}
	var descs []v1.Descriptor
	for _, l := range layers {
		d, err := descriptor(l)
		if err != nil {
			return nil, nil, err
		}
		descs = append(descs, d)
	}
	raw, err := json.Marshal(NewManifest(mod.Version, descs[1], descs[2]))
	return layers, raw, err
}

// A PublishedError is a push refused because its version tag holds other
// content already. A module version's content never changes: sumd sync
// records the first it sees and reports any other as a conflict, for
// ever, and go commands that fetched the first would refuse the second.
type PublishedError struct {
	Tag       name.Tag
	Have, Now v1.Hash // the manifest the tag holds, and the one pushed
}

func (e *PublishedError) Error() string {
	return fmt.Sprintf("%s is published already with other content (manifest %s; this push's would be %s)", e.Tag, e.Have, e.Now)
}

// checkTag refuses to move tag, which Push would point at manifest want,
// if it points at another manifest already. Pushing the same module again
// gives the same manifest, which passes.
func checkTag(tag name.Tag, want v1.Hash, ro []remote.Option) error {
	d, err := remote.Head(tag, ro...)
	switch {
	case isNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("failed to read what %s holds now: %w", tag, err)
	case d.Digest != want:
		return &PublishedError{Tag: tag, Have: d.Digest, Now: want}
	}
	return nil
}

func descriptor(l v1.Layer) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := l.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, err
}

// rawManifest is a manifest to remote.Put as it is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// fileLayer is a blob read from a file rather than memory: a module zip may
// be hundreds of megabytes. The file must not change until it is pushed;
// the registry refuses the upload if it does.
type fileLayer struct {
	path   string
	mt     types.MediaType
	digest v1.Hash
	size   int64
}

var _ v1.Layer = (*fileLayer)(nil)

func newFileLayer(path string, mt types.MediaType) (*fileLayer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, size, err := v1.SHA256(f)
	if err != nil {
		return nil, fmt.Errorf("failed to hash %s: %w", path, err)
	}
	return &fileLayer{path: path, mt: mt, digest: h, size: size}, nil
}

func (l *fileLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *fileLayer) Size() (int64, error)                 { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error)  { return l.mt, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }
