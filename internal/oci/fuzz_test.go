package oci

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/mod/module"
)

// FuzzParseManifest: any bytes a registry serves either fail to parse or
// give an artifact whose every field the format allows, whose repository
// and tag can be named, and which round-trips through NewManifest.
func FuzzParseManifest(f *testing.F) {
	f.Add(goodManifest(f, nil))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.sumd.gomodule.v1","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[],"annotations":{"dev.sumd.module.path":"example.com/m","dev.sumd.module.version":"v1.0.0"}}`))
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.sumd.gomodule.zip.v1+zip","digest":"sha256:00","size":1}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := ParseManifest(raw)
		if err != nil {
			return
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
