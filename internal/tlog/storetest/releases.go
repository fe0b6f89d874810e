package storetest

import (
	"slices"
	"testing"
)

// releaseKeys are the index keys testScanReleases commits, in key order:
// a module's releases, each with pre-releases, pseudo-versions or
// +incompatible, and the modules next to it in key order, one of them
// just past its keys ("A" follows "@").
var releaseKeys = []string{
	"example.com/rel/v2@v2.0.0",
	"example.com/rel2@v1.0.0",
	"example.com/rel@v0.0.0-20200101000000-abcdef123456",
	"example.com/rel@v0.0.0-20200102000000-abcdef123456",
	"example.com/rel@v1.0.0",
	"example.com/rel@v1.0.0-0.20200101000000-abcdef123456",
	"example.com/rel@v1.0.0-rc.1",
	"example.com/rel@v1.0.1-0.20200101000000-abcdef123456",
	"example.com/rel@v1.10.0",
	"example.com/rel@v1.2.3",
	"example.com/rel@v1.2.30",
	"example.com/rel@v1.2.30-pre",
	"example.com/rel@v2.0.0+incompatible",
	"example.com/rel@v2.0.0-rc.1+incompatible",
	"example.com/relA@v1.0.0",
	"example.com/relz@v1.0.0",
}

// testScanReleases checks ScanReleases: the first key of each release of
// one module, from a key, in key order, never another module's.
func testScanReleases(t *testing.T, open Opener) {
	s := openClosed(t, open, "releases")
	m := newModel(t)
	m.create(s)
	b := m.next(len(releaseKeys))
	for i := range b.Records {
		b.Records[i].Key = releaseKeys[i] // the store keeps keys as given
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	firsts := []string{
		"example.com/rel@v0.0.0-20200101000000-abcdef123456",
		"example.com/rel@v1.0.0",
		"example.com/rel@v1.0.1-0.20200101000000-abcdef123456",
		"example.com/rel@v1.10.0",
		"example.com/rel@v1.2.3",
		"example.com/rel@v1.2.30",
		"example.com/rel@v2.0.0+incompatible",
	}
	for _, tc := range []struct {
		path, from string
		limit      int
		want       []string
	}{
		{"example.com/rel", "", 100, firsts},
		{"example.com/rel", "example.com/rel@", 3, firsts[:3]},
		{"example.com/rel", "example.com/rel@v1.0.0-0", 3, []string{"example.com/rel@v1.0.0-0.20200101000000-abcdef123456", firsts[2], firsts[3]}},
		{"example.com/rel", "example.com/rel@v1.0.0.", 100, firsts[2:]},
		{"example.com/rel", "example.com/rel@v1.2.3.", 100, firsts[5:]},
		{"example.com/rel", "example.com/rel@v2.0.0.", 100, nil},
		{"example.com/rel", "example.com/relA", 100, nil},
		{"example.com/rel2", "", 100, []string{"example.com/rel2@v1.0.0"}},
		{"example.com/relA", "", 100, []string{"example.com/relA@v1.0.0"}},
		{"example.com/re", "", 100, nil},
		{"example.com/rel", "", 0, nil},
	} {
		got, err := s.ScanReleases(ctx, tc.path, tc.from, tc.limit)
		if err != nil {
			t.Fatalf("ScanReleases(%q, %q, %d): %v", tc.path, tc.from, tc.limit, err)
		}
		var keys []string
		for _, e := range got {
			key := e.Path + "@" + e.Version
			if i := slices.Index(releaseKeys, key); i < 0 || e.ID != int64(i) {
				t.Fatalf("ScanReleases(%q, %q, %d): %s names record %d, want %d", tc.path, tc.from, tc.limit, key, e.ID, i)
			}
			keys = append(keys, key)
		}
		if !slices.Equal(keys, tc.want) {
			t.Errorf("ScanReleases(%q, %q, %d) = %q, want %q", tc.path, tc.from, tc.limit, keys, tc.want)
		}
	}
}
