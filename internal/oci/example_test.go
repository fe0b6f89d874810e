package oci_test

import (
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/oci"
)

// The artifact of example.com/Old@v2.0.0+incompatible pushed under the
// prefix gomod: where it lives and its manifest.
func ExampleNewManifest() {
	m := module.Version{Path: "example.com/Old", Version: "v2.0.0+incompatible"}
	repo, _ := oci.RepositoryName("gomod", m.Path)
	tag, _ := oci.Tag(m.Version)
	fmt.Printf("%s:%s\n", repo, tag)

	digest := func(c string) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(c, 64)} }
	mod := v1.Descriptor{Digest: digest("a"), Size: 24}
	zip := v1.Descriptor{Digest: digest("b"), Size: 1234}
	out, _ := json.MarshalIndent(oci.NewManifest(m, mod, zip), "", "  ")
	fmt.Println(strings.ReplaceAll(strings.ReplaceAll(string(out), strings.Repeat("a", 64), "aaa…"), strings.Repeat("b", 64), "bbb…"))
	// Output:
	// gomod/example.com/old:v2.0.0_incompatible
	// {
	//   "schemaVersion": 2,
	//   "mediaType": "application/vnd.oci.image.manifest.v1+json",
	//   "config": {
	//     "mediaType": "application/vnd.oci.empty.v1+json",
	//     "size": 2,
	//     "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	//   },
	//   "layers": [
	//     {
	//       "mediaType": "application/vnd.sumd.gomodule.mod.v1",
	//       "size": 24,
	//       "digest": "sha256:aaa…"
	//     },
	//     {
	//       "mediaType": "application/vnd.sumd.gomodule.zip.v1+zip",
	//       "size": 1234,
	//       "digest": "sha256:bbb…"
	//     }
	//   ],
	//   "annotations": {
	//     "dev.sumd.module.path": "example.com/Old",
	//     "dev.sumd.module.version": "v2.0.0+incompatible"
	//   },
	//   "artifactType": "application/vnd.sumd.gomodule.v1"
	// }
}
