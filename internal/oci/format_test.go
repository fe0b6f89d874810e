package oci

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/mod/module"
)

func TestRepositoryName(t *testing.T) {
	tests := []struct{ prefix, path, want string }{
		{"gomod", "example.com/m", "gomod/example.com/m"},
		{"", "example.com/m/v2", "example.com/m/v2"},
		{"a/b", "example.com/Upper/M", "a/b/example.com/upper/m"},
		{"gomod", "example.com/a~b", "gomod/example.com/a-b"},
		{"gomod", "example.com/a._b", "gomod/example.com/a-b"},
		{"gomod", "example.com/a__b/c---d", "gomod/example.com/a__b/c---d"},
		{"gomod", "example.com/_a_/-b-", "gomod/example.com/a/b"},
		{"gomod", "gopkg.in/yaml.v3", "gomod/gopkg.in/yaml.v3"},
	}
	for _, tt := range tests {
		got, err := RepositoryName(tt.prefix, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("RepositoryName(%q, %q) = %q, %v; want %q", tt.prefix, tt.path, got, err, tt.want)
		}
	}
	for _, bad := range []string{"example.com/_", "example.com/~", "not a path", "Example.com/m"} {
		if got, err := RepositoryName("gomod", bad); err == nil {
			t.Errorf("RepositoryName(%q) = %q, want an error", bad, got)
		}
	}
}

func TestTag(t *testing.T) {
	for _, v := range []string{"v1.2.3", "v2.0.0+incompatible", "v0.0.0-20240101000000-abcdefabcdef", "v1.0.0-RC.1"} {
		tag, err := Tag(v)
		if err != nil || strings.Contains(tag, "+") {
			t.Errorf("Tag(%q) = %q, %v", v, tag, err)
		}
		if back, ok := VersionOfTag(tag); !ok || back != v {
			t.Errorf("VersionOfTag(%q) = %q, %v; want %q", tag, back, ok, v)
		}
	}
	if _, err := Tag("v1.0.0-" + strings.Repeat("a", 130)); err == nil {
		t.Error("Tag accepted a version longer than an OCI tag")
	}
	for _, tag := range []string{"latest", "sha256-abcd.sig", "sha256-abcd", "v1.0", "v1.0.0_build", "1.0.0", "",
		"v10.0.0+incompatible", "v1.0.0+x"} { // a tag never holds "+": Tag writes it "_"
		if v, ok := VersionOfTag(tag); ok {
			t.Errorf("VersionOfTag(%q) = %q, want no version", tag, v)
		}
	}
}

// goodManifest is the manifest NewManifest makes, as JSON, edited by edit.
func goodManifest(t testing.TB, edit func(m map[string]any)) []byte {
	t.Helper()
	d := func(c byte) v1.Descriptor {
		return v1.Descriptor{Size: 10, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(string(c), 64)}}
	}
	raw, err := json.Marshal(NewManifest(module.Version{Path: "example.com/m", Version: "v1.0.0"}, d('a'), d('b')))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	raw, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestParseManifest(t *testing.T) {
	a, err := ParseManifest(goodManifest(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if a.Module.String() != "example.com/m@v1.0.0" || a.Mod.MediaType != ModMediaType || a.Zip.MediaType != ZipMediaType {
		t.Errorf("ParseManifest = %+v", a)
	}
	// An older tool may put the artifact type in the config media type.
	_, err = ParseManifest(goodManifest(t, func(m map[string]any) {
		delete(m, "artifactType")
		m["config"].(map[string]any)["mediaType"] = ArtifactType
	}))
	if err != nil {
		t.Errorf("artifact type as config media type: %v", err)
	}
}

func TestParseManifestRefuses(t *testing.T) {
	layers := func(m map[string]any) []any { return m["layers"].([]any) }
	annotations := func(m map[string]any) map[string]any { return m["annotations"].(map[string]any) }
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"schema 1", func(m map[string]any) { m["schemaVersion"] = 1 }, "schemaVersion"},
		{"docker media type", func(m map[string]any) { m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json" }, "mediaType"},
		{"other artifact type", func(m map[string]any) { m["artifactType"] = "application/x-other" }, "artifactType"},
		{"config not empty", func(m map[string]any) { m["config"].(map[string]any)["size"] = 3 }, "empty config"},
		{"one layer", func(m map[string]any) { m["layers"] = layers(m)[:1] }, "1 layers"},
		{"two zips", func(m map[string]any) { layers(m)[0] = layers(m)[1] }, "unexpected layer"},
		{"foreign layer", func(m map[string]any) { layers(m)[1].(map[string]any)["urls"] = []string{"https://evil/"} }, "urls"},
		{"negative size", func(m map[string]any) { layers(m)[1].(map[string]any)["size"] = -1 }, "negative"},
		{"sha512", func(m map[string]any) {
			layers(m)[1].(map[string]any)["digest"] = "sha512:" + strings.Repeat("a", 128)
		}, "not sha256"},
		{"no version", func(m map[string]any) { delete(annotations(m), VersionAnnotation) }, "annotations"},
		{"non-canonical version", func(m map[string]any) { annotations(m)[VersionAnnotation] = "v1.0" }, "canonical"},
		{"bad path", func(m map[string]any) { annotations(m)[PathAnnotation] = "Example.com/m" }, "annotations"},
		{"major mismatch", func(m map[string]any) { annotations(m)[VersionAnnotation] = "v2.0.0" }, "annotations"},
		{"needless +incompatible", func(m map[string]any) { annotations(m)[VersionAnnotation] = "v1.0.0+incompatible" }, "+incompatible suffix not allowed"},
		{"not json", nil, "failed to parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte("{not json")
			if tt.edit != nil {
				raw = goodManifest(t, tt.edit)
			}
			a, err := ParseManifest(raw)
			if err == nil || errors.Is(err, ErrNotModule) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseManifest = %+v, %v; want an error containing %q", a, err, tt.want)
			}
		})
	}
	if _, err := ParseManifest(make([]byte, MaxManifestSize+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized manifest: %v", err)
	}
}

func TestParseManifestNotModule(t *testing.T) {
	raw := goodManifest(t, func(m map[string]any) {
		delete(m, "artifactType")
		delete(m, "annotations")
	})
	if _, err := ParseManifest(raw); !errors.Is(err, ErrNotModule) {
		t.Errorf("ParseManifest(image without module marks) = %v, want ErrNotModule", err)
	}
}

func TestCheckPlacement(t *testing.T) {
	a := &Artifact{Module: module.Version{Path: "example.com/M", Version: "v2.0.0+incompatible"}}
	if err := checkPlacement(a, "p", "p/example.com/m", "v2.0.0_incompatible"); err != nil {
		t.Errorf("checkPlacement at the right place: %v", err)
	}
	for _, at := range [][2]string{{"p/example.com/m", "v2.0.0"}, {"q/example.com/m", "v2.0.0_incompatible"}, {"p/example.com/n", "v2.0.0_incompatible"}} {
		if err := checkPlacement(a, "p", at[0], at[1]); err == nil {
			t.Errorf("checkPlacement accepted %s at %s:%s", a.Module, at[0], at[1])
		}
	}
}

// TestParseManifestStrict: a signed manifest means one thing to every
// parser. Trailing bytes, keys spelled in another case (which Go's
// encoding/json matches, and other parsers do not) and keys given twice
// (the last wins in Go, the first in others) are refused, not read as Go
// reads them.
func TestParseManifestStrict(t *testing.T) {
	good := string(goodManifest(t, nil))
	swap := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("manifest %s has no %s", good, old)
		}
		return strings.Replace(good, old, new, 1)
	}
	for name, raw := range map[string]string{
		"trailing object":      good + `{"schemaVersion":2}`,
		"trailing garbage":     good + "x",
		"trailing second":      good + " " + good,
		"key case":             swap(`"layers"`, `"Layers"`),
		"nested key case":      swap(`"digest"`, `"Digest"`),
		"unicode fold":         swap(`"size"`, "\"\u017fize\""), // ſ, the long s, folds to s
		"duplicate key":        swap(`"schemaVersion":2`, `"schemaVersion":2,"schemaVersion":2`),
		"duplicate annotation": swap(`"annotations":{`, `"annotations":{"dev.sumd.module.path":"example.com/other",`),
		"invalid utf-8":        swap(`"annotations":{`, "\"annotations\":{\"x\":\"\xff\","),
	} {
		t.Run(name, func(t *testing.T) {
			if a, err := ParseManifest([]byte(raw)); err == nil || errors.Is(err, ErrNotModule) {
				t.Errorf("ParseManifest = %v, %v; want it refused", a, err)
			}
		})
	}
	// Trailing white space is no second value, and unknown keys are
	// ignored, as the image spec asks.
	for _, raw := range []string{good + "\n", swap(`"schemaVersion":2`, `"schemaVersion":2,"x-extra":{"a":[1]}`)} {
		if _, err := ParseManifest([]byte(raw)); err != nil {
			t.Errorf("ParseManifest(%s): %v", raw, err)
		}
	}
}
