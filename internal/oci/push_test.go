package oci

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/modhash"
)

func TestPushDeterministic(t *testing.T) {
	reg := newTestRegistry(t, true)
	src := reg.source(t, "gomod")
	mod := simpleModule(t, "v1.0.0")
	var first *Pushed
	for range 2 {
		p, err := Push(context.Background(), src, mod, PushOptions{Remote: testRemote})
		if err != nil {
			t.Fatal(err)
		}
		if first != nil && p.Ref != first.Ref {
			t.Errorf("pushing twice gave %s and %s, want one digest", first.Ref, p.Ref)
		}
		first = p
	}
	if want := reg.host + "/gomod/example.com/m:v1.0.0"; first.Tag.String() != want {
		t.Errorf("tag %s, want %s", first.Tag, want)
	}
	if first.Signature != (name.Tag{}) {
		t.Errorf("an unsigned push has signature tag %s", first.Signature)
	}
	a := manifestOf(t, first)
	if a.Module != mod.Version || a.Mod.Size != int64(len(mod.GoMod)) {
		t.Errorf("pushed artifact %+v", a)
	}
}

// TestPushRefusesPublished: a version tag that holds other content is not
// moved (sync would report a conflict for ever) and none of the new content
// is uploaded; the same content again passes.
func TestPushRefusesPublished(t *testing.T) {
	reg := newTestRegistry(t, true)
	src := reg.source(t, "gomod")
	first, err := Push(context.Background(), src, simpleModule(t, "v1.0.0"), PushOptions{Remote: testRemote})
	if err != nil {
		t.Fatal(err)
	}
	m := module.Version{Path: "example.com/m", Version: "v1.0.0"}
	other := testModule(t, m, map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", "m.go": "package m\n// other\n"})
	_, err = Push(context.Background(), src, other, PushOptions{Remote: testRemote})
	var published *PublishedError
	if !errors.As(err, &published) || published.Have.String() != first.Ref.DigestStr() {
		t.Fatalf("push of other content to a published tag = %v, want a PublishedError naming %s", err, first.Ref.DigestStr())
	}
	if d, err := remote.Head(first.Tag, testRemote.options(context.Background())...); err != nil || d.Digest.String() != first.Ref.DigestStr() {
		t.Errorf("the tag holds %v (%v) after the refused push, want %s", d, err, first.Ref.DigestStr())
	}
	layers, _, err := artifact(other)
	if err != nil {
		t.Fatal(err)
	}
	zip, _ := layers[2].Digest()
	if l, err := remote.Layer(first.Tag.Context().Digest(zip.String()), testRemote.options(context.Background())...); err == nil {
		if rc, err := l.Compressed(); err == nil {
			rc.Close()
			t.Error("the refused push uploaded its zip")
		}
	}
	if _, err := Push(context.Background(), src, simpleModule(t, "v1.0.0"), PushOptions{Remote: testRemote}); err != nil {
		t.Errorf("pushing the published content again = %v, want nil", err)
	}
}

func TestOpenModuleDir(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "go.mod"), []byte("module example.com/d\n\ngo 1.21\n"))
	writeTestFile(t, filepath.Join(dir, "d.go"), []byte("package d\n"))
	m := module.Version{Path: "example.com/d", Version: "v1.2.3"}
	mod, err := OpenModule(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := modhash.HashDir(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	if mod.Sums != want || string(mod.GoMod) != "module example.com/d\n\ngo 1.21\n" {
		t.Errorf("OpenModule(dir) = %+v, want sums %+v", mod, want)
	}
	zip := mod.Zip
	mod.Close()
	if _, err := os.Stat(zip); !os.IsNotExist(err) {
		t.Errorf("Close left the temporary zip %s", zip)
	}
}

func TestOpenModuleWithoutGoMod(t *testing.T) {
	m := module.Version{Path: "example.com/old", Version: "v2.0.0+incompatible"}
	mod := testModule(t, m, map[string]string{"old.go": "package old\n"})
	if string(mod.GoMod) != "module example.com/old\n" {
		t.Errorf("go.mod layer %q, want the synthesized one", mod.GoMod)
	}
}

func TestOpenModuleRefuses(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "go.mod"), []byte("module example.com/other\n"))
	if _, err := OpenModule(module.Version{Path: "example.com/d", Version: "v1.0.0"}, dir); err == nil || !strings.Contains(err.Error(), "declares module path") {
		t.Errorf("OpenModule of a module declaring another path = %v", err)
	}
	if _, err := OpenModule(module.Version{Path: "example.com/d", Version: "v1.0"}, dir); err == nil {
		t.Error("OpenModule accepted a non-canonical version")
	}
}

func TestLoadKeys(t *testing.T) {
	k := newKey(t, 0)
	data, err := ReadPrivateKey(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ParsePrivateKey(data, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sv.SignMessage(strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.public(t).verifier.VerifySignature(bytes.NewReader(sig), strings.NewReader("payload")); err != nil {
		t.Errorf("cosign.key and cosign.pub do not match once loaded: %v", err)
	}
	if _, err := ParsePrivateKey(data, []byte("wrong")); err == nil || !strings.Contains(err.Error(), "decrypt") {
		t.Errorf("ParsePrivateKey with a wrong password = %v", err)
	}
	if _, err := LoadPublicKey(k.priv); err == nil || !strings.Contains(err.Error(), "cosign.pub") {
		t.Errorf("LoadPublicKey of a private key = %v, want a hint at cosign.pub", err)
	}
}

func TestSignTwice(t *testing.T) {
	reg := newTestRegistry(t, false)
	k := newKey(t, 0)
	p, err := Push(context.Background(), reg.source(t, "gomod"), simpleModule(t, "v1.0.0"), PushOptions{Remote: testRemote, Signer: k.sv})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(context.Background(), p.Ref, k.sv, testRemote); err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(p.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if layers, _ := img.Layers(); len(layers) != 1 {
		t.Errorf("signature image has %d layers after signing twice with one key, want 1", len(layers))
	}
}
