package tuf_test

import (
	"fmt"

	"github.com/sumd-project/sumd/internal/tuf"
)

// A database during a key rotation, as the repository publishes it: the
// two targets, and the GOSUMDB value clients derive from them (the oldest
// key, until the old one is retired). A "/" in the name becomes "_" in the target paths.
func ExampleNewDatabase() {
	d, err := tuf.NewDatabase([]string{
		"corp.example/sumdb+9e19102e+ASFnIEKUNp2BTHT/o3tjec6bwg2BJZAW9osggcg2zOLo", // old
		"corp.example/sumdb+7f482f7e+AX8iPpzzwY1YlDj5J9fNMcoj00tB+soFs0bVvr/VbD2c", // new
	}, "https://corp.example/sumdb")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tuf.VKeyTarget(d.Name))
	fmt.Println(tuf.JSONTarget(d.Name))
	fmt.Println(d.GOSUMDB())
	// Output:
	// sumdb/corp.example_sumdb.vkey
	// sumdb/corp.example_sumdb.json
	// corp.example/sumdb+9e19102e+ASFnIEKUNp2BTHT/o3tjec6bwg2BJZAW9osggcg2zOLo https://corp.example/sumdb
}

// ParsePath maps request paths below /tuf/ to repository files; anything
// outside the layout is not found.
func ExampleParsePath() {
	for _, p := range []string{"metadata/timestamp.json", "metadata/2.root.json", "metadata/root.json", "keys/timestamp-0a1b2c3d.key"} {
		f, ok := tuf.ParsePath(p)
		fmt.Println(p, ok, f.Immutable)
	}
	// Output:
	// metadata/timestamp.json true false
	// metadata/2.root.json true true
	// metadata/root.json false false
	// keys/timestamp-0a1b2c3d.key false false
}
