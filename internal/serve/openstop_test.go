package serve

import (
	"context"
	"fmt"
	"testing"

	"github.com/sumd-project/sumd/internal/tlog"
)

// TestStopInterruptsOpen: a stop during the open of the log ends the
// open's verification (tlog.Options.Stop, which the CLI ties to the
// signals), and Open fails with ErrOpenStopped; Run took that for a
// failure to open (exit 1), where a stop during the start is a clean stop.
func TestStopInterruptsOpen(t *testing.T) {
	cfg, _, _ := testConfig(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	cfg.OpenLog = func() (*tlog.Log, error) {
		stop()
		return nil, fmt.Errorf("database %s: %w", cfg.DBFile, tlog.ErrOpenStopped)
	}
	if err := Run(ctx, cfg); err != nil {
		t.Errorf("Run whose open a stop interrupted = %v, want nil", err)
	}
}
