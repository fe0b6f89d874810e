package serve

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestLogPassBudget: a pass that spent its download budget logged "OCI
// sync pass done" as any other, and left out the refusals of the
// cross-check; only internal/oci's own warning said where the next pass
// starts. The pass's line says both, and the artifact the next pass
// starts at (the server log may name a registry, unlike the status).
func TestLogPassBudget(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	r := &SyncReport{Outcomes: map[string]int{"recorded": 3}, Refused: []error{errors.New("refused")},
		BudgetSpent: true, Resume: "registry.example/mods:v1.2.0"}
	logPass(context.Background(), logger, r, nil, 0)
	line := buf.String()
	for _, want := range []string{"budget_spent=true", "resume=registry.example/mods:v1.2.0", "refused=1", "recorded=3"} {
		if !strings.Contains(line, want) {
			t.Errorf("pass log line %q lacks %q", line, want)
		}
	}

	// A pass that examined everything says nothing of a budget.
	buf.Reset()
	logPass(context.Background(), logger, &SyncReport{Outcomes: map[string]int{"recorded": 3}}, nil, 0)
	if line := buf.String(); strings.Contains(line, "budget_spent") || strings.Contains(line, "resume") {
		t.Errorf("pass log line %q of a whole pass names the budget", line)
	}
}
