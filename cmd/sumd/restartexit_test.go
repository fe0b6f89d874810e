package main

import (
	"fmt"
	"io"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/tlog"
)

// TestReportDoNotRestart: the errors whose hint says not to start sumd
// again on the database (a store rolled back under a running log, data
// beyond the signed head, a head recorded as lost that the database's does
// not extend, refused at every open) exit with exitDoNotRestart, which
// packaging/sumd.service's RestartPreventExitStatus= keeps systemd from
// restarting; with status 1, Restart=on-failure started sumd serve again
// five seconds later on the rolled-back head, the fork the hint warns of.
// Other failures, fatal ones included, keep status 1: restarting
// re-verifies the database.
func TestReportDoNotRestart(t *testing.T) {
	fork := &tlog.ForkError{Big: xtlog.Tree{N: 1}, Small: xtlog.Tree{N: 2}}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"rolled back under the log", fmt.Errorf("the log's sequencer stopped: %w", fmt.Errorf("%w: %w", tlog.ErrFatal, fork)), exitDoNotRestart},
		{"data beyond the head", fmt.Errorf("failed to open: %w", &tlog.BeyondHeadError{Tree: 1, Found: []string{"records up to id 1"}}), exitDoNotRestart},
		{"a lost head refused at open", fmt.Errorf("database: %w", &tlog.LostHeadError{Tree: 1, Lost: 2, Err: fork}), exitDoNotRestart},
		{"storage failure", fmt.Errorf("the log's sequencer stopped: %w", tlog.ErrFatal), 1},
		{"a fork that stopped nothing", fmt.Errorf("mirror: %w", fork), 1},
	} {
		if got := report(tc.err, io.Discard); got != tc.want {
			t.Errorf("%s: exit status %d, want %d", tc.name, got, tc.want)
		}
	}
	if exitDoNotRestart == 1 || exitDoNotRestart == 2 {
		t.Errorf("exitDoNotRestart = %d, the status of every other failure", exitDoNotRestart)
	}
}
