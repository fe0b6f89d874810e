package audit

import (
	"testing"
)

const benchRecords = 50_000

// BenchmarkAudit measures full-audit throughput against a real sumd log of
// 50,000 records served in-process over loopback HTTP: fetching and
// splitting data tiles, parsing and hashing records, rebuilding and
// matching the tree, and the key set. "state" keeps the key set and
// checkpoints in a fresh state directory (synced commits); "temp" in the
// throwaway file a run without -state uses.
func BenchmarkAudit(b *testing.B) {
	tl := newTestLog(b, "", benchRecords, testRecord)
	for _, tc := range []struct {
		name  string
		state bool
	}{{"temp", false}, {"state", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var audited int64
			for b.Loop() {
				dir := ""
				if tc.state {
					dir = b.TempDir()
				}
				rep := mustAudit(b, tl.srv.URL, tl.vkey, func(o *Options) { o.Full, o.StateDir = true, dir })
				if !rep.OK || rep.RecordsAudited != benchRecords {
					b.Fatalf("audit: %s", problems(rep))
				}
				audited += rep.RecordsAudited
			}
			b.ReportMetric(float64(audited)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
