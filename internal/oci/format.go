package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// The module artifact format (docs/oci.md). The media types are sumd's own:
// no public convention exists for Go modules in OCI registries.
const (
	// ArtifactType is the manifest's artifactType. Registries and tools
	// that cannot set artifactType may put it in the config media type
	// instead, as OCI image-spec 1.1 suggests; both are accepted.
	ArtifactType = "application/vnd.sumd.gomodule.v1"
	// ModMediaType is the layer holding the go.mod file, exactly as a
	// module proxy serves it at @v/<version>.mod.
	ModMediaType = "application/vnd.sumd.gomodule.mod.v1"
	// ZipMediaType is the layer holding the module zip, exactly as a
	// module proxy serves it at @v/<version>.zip.
	ZipMediaType = "application/vnd.sumd.gomodule.zip.v1+zip"
	// EmptyMediaType is the OCI empty descriptor's media type; the config
	// blob is the two bytes "{}".
	EmptyMediaType = "application/vnd.oci.empty.v1+json"

	// PathAnnotation and VersionAnnotation name the module version. They
	// are authoritative: the signature covers them.
	PathAnnotation    = "dev.sumd.module.path"
	VersionAnnotation = "dev.sumd.module.version"

	// MaxManifestSize caps a module artifact's manifest. Ours are well
	// under 2 KiB; the cap only bounds what a hostile registry can make us
	// parse.
	MaxManifestSize = 64 << 10
)

// emptyConfig is the OCI empty descriptor: media type, "{}" and its digest.
var emptyConfig = v1.Descriptor{
	MediaType: EmptyMediaType,
	Size:      2,
	Digest:    v1.Hash{Algorithm: "sha256", Hex: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
}

// ErrNotModule means a manifest carries none of the marks of a module
// artifact (artifactType, config media type, module annotations): it is
// something else sharing the repository, and is ignored rather than refused.
var ErrNotModule = errors.New("not a Go module artifact")

// An Artifact is a parsed, checked module artifact manifest.
type Artifact struct {
	Module module.Version // from the annotations
	Mod    v1.Descriptor  // the go.mod layer
	Zip    v1.Descriptor  // the module zip layer
}

// NewManifest returns the manifest of the artifact for m with the given
// layers. It is deterministic (no timestamps), so pushing the same module
// twice yields the same digest.
func NewManifest(m module.Version, mod, zip v1.Descriptor) v1.Manifest {
	mod.MediaType, zip.MediaType = ModMediaType, ZipMediaType
	return v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        emptyConfig,
		Layers:        []v1.Descriptor{mod, zip},
		Annotations:   map[string]string{PathAnnotation: m.Path, VersionAnnotation: m.Version},
	}
}

// ParseManifest parses raw, an untrusted image manifest, as a module
// artifact. It returns an error wrapping ErrNotModule for a manifest that
// does not claim to be one, and another error for one that claims to be
// one but is malformed: any deviation from the format is refused, since
// the go command would never see these bytes to judge them itself, and so
// is JSON that another parser could read otherwise (checkJSON).
func ParseManifest(raw []byte) (*Artifact, error) {
	if len(raw) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the limit of %d", len(raw), MaxManifestSize)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("failed to parse manifest: %w", err)
	}
	if m.ArtifactType != ArtifactType && m.Config.MediaType != ArtifactType &&
		m.Annotations[PathAnnotation] == "" && m.Annotations[VersionAnnotation] == "" {
		return nil, fmt.Errorf("manifest of artifactType %q: %w", m.ArtifactType, ErrNotModule)
	}
	// Only now: what is not a module is ignored, however it is written.
	if err := checkJSON(raw, manifestKeys); err != nil {
		return nil, fmt.Errorf("failed to parse manifest: %w", err)
	}
	return checkManifest(&m)
}

// A jsonSchema names the keys of the objects of a JSON document that
// encoding/json decodes into structs, so that checkJSON can hold them to
// their exact spelling: fields for an object's keys, elem for an array's
// elements. The zero schema is a map or a value sumd does not read.
type jsonSchema struct {
	fields map[string]*jsonSchema
	elem   *jsonSchema
}

// manifestKeys are the keys of v1.Manifest, its descriptors and platform.
var manifestKeys = func() *jsonSchema {
	platform := &jsonSchema{fields: map[string]*jsonSchema{
		"architecture": nil, "os": nil, "os.version": nil, "os.features": nil, "variant": nil, "features": nil,
	}}
	desc := &jsonSchema{fields: map[string]*jsonSchema{
		"mediaType": nil, "size": nil, "digest": nil, "data": nil, "urls": nil, "annotations": nil,
		"platform": platform, "artifactType": nil,
	}}
	return &jsonSchema{fields: map[string]*jsonSchema{
		"schemaVersion": nil, "mediaType": nil, "config": desc, "layers": {elem: desc},
		"annotations": nil, "subject": desc, "artifactType": nil,
	}}
}()

// checkJSON refuses what encoding/json would read one way and another
// parser another, in a document whose meaning a signature vouches for:
// anything after the first value (json.Decoder stops there), invalid UTF-8
// (replaced by U+FFFD), a key given twice in one object (the last wins in
// Go, the first in some parsers), and a key of s spelled in another case
// or Unicode folding (Go matches it to the field, a case-sensitive parser
// ignores it). Keys s does not name are left alone: the image spec asks
// readers to ignore them.
func checkJSON(raw []byte, s *jsonSchema) error {
	if !utf8.Valid(raw) {
		return errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := checkJSONValue(dec, s); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON object at offset %d", dec.InputOffset())
	}
	return nil
}

// checkJSONValue reads one value from dec, checking its objects' keys
// against s (nil: any key).
func checkJSONValue(dec *json.Decoder, s *jsonSchema) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if s == nil {
		s = &jsonSchema{}
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			if err := checkJSONValue(dec, s.elem); err != nil {
				return err
			}
		}
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key := tok.(string) // Token returns only strings as keys
			if seen[key] {
				return fmt.Errorf("key %q appears twice in one object", key)
			}
			seen[key] = true
			sub, known := s.fields[key]
			if !known {
				for name := range s.fields {
					if strings.EqualFold(key, name) {
						return fmt.Errorf("key %q must be spelled %q", key, name)
					}
				}
			}
			if err := checkJSONValue(dec, sub); err != nil {
				return err
			}
		}
	default:
		return nil // a scalar
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// checkManifest checks a manifest that claims to be a module artifact.
func checkManifest(m *v1.Manifest) (*Artifact, error) {
	switch {
	case m.SchemaVersion != 2:
		return nil, fmt.Errorf("manifest schemaVersion is %d, want 2", m.SchemaVersion)
	case m.MediaType != types.OCIManifestSchema1:
		return nil, fmt.Errorf("manifest mediaType is %q, want %s", m.MediaType, types.OCIManifestSchema1)
	case m.ArtifactType != ArtifactType && !(m.ArtifactType == "" && m.Config.MediaType == ArtifactType):
		return nil, fmt.Errorf("artifactType is %q, want %s", m.ArtifactType, ArtifactType)
	case m.Config.Digest != emptyConfig.Digest || m.Config.Size != emptyConfig.Size:
		return nil, fmt.Errorf("config is %s (%d bytes), want the empty config {}", m.Config.Digest, m.Config.Size)
	case m.Config.MediaType != EmptyMediaType && m.Config.MediaType != ArtifactType:
		return nil, fmt.Errorf("config mediaType is %q, want %s", m.Config.MediaType, EmptyMediaType)
	}
	a := &Artifact{Module: module.Version{Path: m.Annotations[PathAnnotation], Version: m.Annotations[VersionAnnotation]}}
	if err := gosum.CheckNewModule(a.Module.Path, a.Module.Version); err != nil {
		return nil, fmt.Errorf("annotations %s and %s: %w", PathAnnotation, VersionAnnotation, err)
	}
	var err error
	if a.Mod, a.Zip, err = checkLayers(m.Layers); err != nil {
		return nil, err
	}
	return a, nil
}

// checkLayers returns the go.mod and zip layers: exactly one of each, with
// plain sha256 digests, served by the registry itself.
func checkLayers(layers []v1.Descriptor) (mod, zip v1.Descriptor, err error) {
	if len(layers) != 2 {
		return mod, zip, fmt.Errorf("manifest has %d layers, want 2 (go.mod and zip)", len(layers))
	}
	for _, l := range layers {
		switch {
		case l.Digest.Algorithm != "sha256" || len(l.Digest.Hex) != 64:
			return mod, zip, fmt.Errorf("layer digest %q is not sha256", l.Digest)
		case l.Size < 0:
			return mod, zip, fmt.Errorf("layer %s has a negative size", l.Digest)
		case len(l.URLs) > 0:
			// Foreign layers would make us fetch from anywhere.
			return mod, zip, fmt.Errorf("layer %s has urls; module layers must be in the registry", l.Digest)
		case l.MediaType == ModMediaType && mod.MediaType == "":
			mod = l
		case l.MediaType == ZipMediaType && zip.MediaType == "":
			zip = l
		default:
			return mod, zip, fmt.Errorf("unexpected layer of mediaType %q, want one %s and one %s", l.MediaType, ModMediaType, ZipMediaType)
		}
	}
	return mod, zip, nil
}

// ociComponent is one path component of an OCI repository name
// (distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*).
var ociComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)

// RepositoryName returns the repository (without the registry host) that
// holds the artifacts of the module at modPath: prefix, "/", and the module
// path in lower case with each path element made a valid OCI name
// component: a run of punctuation other than ".", "_", "__" or dashes
// (such as "~" or "._") becomes "-", and punctuation at either end of an
// element is dropped. An element with no letter or digit cannot be mapped
// and is an error. The mapping is not injective (example.com/A and
// example.com/a share a repository); that is harmless, since the
// annotations say which module an artifact holds.
func RepositoryName(prefix, modPath string) (string, error) {
	if err := module.CheckPath(modPath); err != nil {
		return "", err
	}
	elems := strings.Split(strings.ToLower(modPath), "/")
	for i, e := range elems {
		if elems[i] = repoComponent(e); elems[i] == "" {
			return "", fmt.Errorf("module path %s: element %q has no letter or digit to name an OCI repository with", modPath, e)
		}
	}
	name := strings.Join(elems, "/")
	if prefix != "" {
		name = prefix + "/" + name
	}
	return name, nil
}

// repoComponent maps one lower-case module path element to an OCI name
// component, or "" if it has no letter or digit.
func repoComponent(e string) string {
	var b strings.Builder
	sep := ""
	for _, r := range e {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			if b.Len() > 0 && sep != "" {
				b.WriteString(ociSeparator(sep))
			}
			sep = ""
			b.WriteRune(r)
			continue
		}
		sep += string(r)
	}
	return b.String()
}

// ociSeparator returns sep if OCI allows it between two name characters,
// else "-".
func ociSeparator(sep string) string {
	if sep == "." || sep == "_" || sep == "__" || strings.Trim(sep, "-") == "" {
		return sep
	}
	return "-"
}

// Tag returns the tag of a module version's artifact: the version with "+"
// (which OCI tags cannot hold) written "_" (which semantic versions cannot
// hold), so the mapping is reversible.
func Tag(version string) (string, error) {
	tag := strings.ReplaceAll(version, "+", "_")
	if !ociTag.MatchString(tag) {
		return "", fmt.Errorf("version %q cannot be an OCI tag (at most 128 characters of [A-Za-z0-9._-])", version)
	}
	return tag, nil
}

var ociTag = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// VersionOfTag returns the module version a tag stands for, or false if the
// tag is not a canonical module version written as Tag writes it (such as
// "latest" or cosign's "sha256-<hex>.sig"): sync reads only version tags.
// A tag holding "+" is refused: no registry should accept one, and if one
// did, "v1.0.0+incompatible" and "v1.0.0_incompatible" would both stand for
// one version, so Tag would not give the tag back.
func VersionOfTag(tag string) (string, bool) {
	if strings.Contains(tag, "+") {
		return "", false
	}
	v := strings.ReplaceAll(tag, "_", "+")
	if module.CanonicalVersion(v) != v || v == "" {
		return "", false
	}
	return v, true
}

// checkPlacement refuses an artifact found somewhere other than where Push
// would have put it: a signature covers the annotations, not the repository
// or tag, so without this check a signed artifact could be replayed under
// any name.
func checkPlacement(a *Artifact, prefix, repo, tag string) error {
	wantRepo, err := RepositoryName(prefix, a.Module.Path)
	if err != nil {
		return err
	}
	wantTag, err := Tag(a.Module.Version)
	if err != nil {
		return err
	}
	if repo != wantRepo || tag != wantTag {
		return fmt.Errorf("artifact of %s is at %s:%s, want %s:%s", a.Module, repo, tag, wantRepo, wantTag)
	}
	return nil
}
