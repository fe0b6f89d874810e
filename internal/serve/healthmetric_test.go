package serve

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sumd-project/sumd/internal/tlog"
)

// TestHealthMetrics: sumd_health_state follows the health /healthz
// reports (ok, degraded, unavailable as 0, 1, 2) and sumd_health_problems
// counts each part's problems, with no series for a part without one.
func TestHealthMetrics(t *testing.T) {
	skey, _, err := tlog.GenerateKey("health.example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	l, err := tlog.Open(filepath.Join(t.TempDir(), "sumd.db"), tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var problems []Problem
	b := &board{log: l, parts: []Part{{Name: "test", Report: func(s *Status) {
		s.Health.Problems = append(s.Health.Problems, problems...)
	}}}}
	const head = `# HELP sumd_health_problems Problems each part of the server reports now, as /healthz lists them (only parts with a problem have a series).
# TYPE sumd_health_problems gauge
`
	const state = `# HELP sumd_health_state The server's health as /healthz reports it: 0 ok, 1 degraded (the log serves, something beside it needs attention), 2 unavailable (the log cannot serve).
# TYPE sumd_health_state gauge
`
	for _, tc := range []struct {
		name     string
		problems []Problem
		want     string
	}{
		{"ok", nil, state + "sumd_health_state 0\n"},
		{"degraded", []Problem{{"disk", "low"}, {"mirror sum.golang.org", "offline"}, {"mirror sum.golang.org", "behind"}},
			head + `sumd_health_problems{part="disk"} 1
sumd_health_problems{part="mirror sum.golang.org"} 2
` + state + "sumd_health_state 1\n"},
		{"unavailable", []Problem{{"tls", "expired"}, {"log", "the signed tree head cannot be served"}},
			head + `sumd_health_problems{part="log"} 1
sumd_health_problems{part="tls"} 1
` + state + "sumd_health_state 2\n"},
	} {
		problems = tc.problems
		if err := testutil.CollectAndCompare(newHealthCollector(b), strings.NewReader(tc.want)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
