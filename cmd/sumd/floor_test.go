package main

import (
	"io"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
)

// TestFetcherFloors: a fetcher's zips spill onto a disk whose floor is
// -min-free-disk where they share it with a database (sumd add -gosum
// -upstream: <db>.tmp), and have no floor where there is no database to
// protect (sumd verify -recheck, in $TMPDIR); the fetcher's default, 64
// MiB, would refuse rechecks on a nearly full $TMPDIR and ignore
// -min-free-disk 0 or a higher floor.
func TestFetcherFloors(t *testing.T) {
	if got := recheckFetcherOptions(nil).MinFree; got >= 0 {
		t.Errorf("verify -recheck's fetcher floor = %d, want none (negative)", got)
	}
	for _, mib := range []int{0, 1024} {
		cfg := &config.Add{}
		cfg.Upstream = "https://proxy.example"
		cfg.MinFreeDisk = mib
		opts, err := gosumUpstream(cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if want := cfg.DiskFloor.Bytes(); opts.MinFree != want {
			t.Errorf("add -gosum -upstream -min-free-disk %d: fetcher floor %d, want %d", mib, opts.MinFree, want)
		}
	}
}
