package serve

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testlog"
)

// TestFilesNeeded: every listener may hold -max-connections connections,
// and each upstream fetch a few files, beside the database's.
func TestFilesNeeded(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want uint64
	}{
		{Config{Listen: ":0"}, DefaultMaxConnections + filesBeside},
		{Config{Listen: ":0", AdminListen: ":1", ReadListen: ":2", MaxConnections: 100}, 3*100 + filesBeside},
		{Config{Listen: ":0", MetricsListen: ":1", MaxConnections: 100, UpstreamParallel: 16}, 2*100 + filesBeside + 16*filesPerFetch},
	} {
		if got := filesNeeded(tc.cfg); got != tc.want {
			t.Errorf("filesNeeded(%+v) = %d, want %d", tc.cfg, got, tc.want)
		}
	}
}

// TestPlanFileLimit: a soft limit short of the need is raised toward the
// hard limit, never past it, and never lowered; short says that even the
// hard limit is below the need.
func TestPlanFileLimit(t *testing.T) {
	const inf = ^uint64(0) // RLIM_INFINITY
	for _, tc := range []struct {
		soft, hard, need uint64
		set              uint64
		short            bool
	}{
		{65536, 65536, 11000, 65536, false},    // Go raised the soft limit to the hard one
		{1024, 524288, 11000, 11000, false},    // a soft limit Go did not raise
		{1024, inf, 11000, 11000, false},       // no hard limit
		{1024, 4096, 11000, 4096, true},        // the hard limit is short
		{4096, 4096, 11000, 4096, true},        // the same, raised already
		{200000, 300000, 11000, 200000, false}, // never lowered
	} {
		set, short := planFileLimit(tc.soft, tc.hard, tc.need)
		if set != tc.set || short != tc.short {
			t.Errorf("planFileLimit(%d, %d, %d) = %d, %v; want %d, %v", tc.soft, tc.hard, tc.need, set, short, tc.set, tc.short)
		}
	}
}

// TestFileLimitWarning: a server whose hard limit on open files is below
// what its listeners may need raises the soft limit to it and warns,
// naming both numbers and what to change; one with room says nothing.
func TestFileLimitWarning(t *testing.T) {
	cfg := Config{Listen: ":0", ReadListen: ":1"}
	need := filesNeeded(cfg)
	for _, hard := range []uint64{4096, 65536} {
		var logs testlog.Buffer
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		soft, hardSet := uint64(1024), uint64(0)
		checkFileLimit(cfg, fileLimiter{
			get: func() (uint64, uint64, error) { return soft, hard, nil },
			set: func(s, h uint64) error { soft, hardSet = s, h; return nil },
		})
		out := logs.String()
		if hard < need {
			if soft != hard || hardSet != hard {
				t.Errorf("hard limit %d: soft limit set to %d (hard %d), want %d", hard, soft, hardSet, hard)
			}
			for _, want := range []string{"level=WARN", "limit=4096", "needed=" + strconv.FormatUint(need, 10), "LimitNOFILE=", "ulimit -n"} {
				if !strings.Contains(out, want) {
					t.Errorf("hard limit %d below the need %d: the log lacks %q:\n%s", hard, need, want, out)
				}
			}
			continue
		}
		if soft != need || out != "" {
			t.Errorf("hard limit %d above the need %d: soft limit %d, log %q; want the soft limit raised to the need, no warning", hard, need, soft, out)
		}
	}
}
