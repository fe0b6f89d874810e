package testenv

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestInCI(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want bool
	}{
		{"", false}, {"false", false}, {"0", false},
		{"true", true}, {"1", true}, {"yes", true},
	} {
		t.Setenv("CI", tc.val)
		if got := InCI(); got != tc.want {
			t.Errorf("CI=%q: InCI() = %v, want %v", tc.val, got, tc.want)
		}
	}
}

// TestGoHome asks the go command itself which telemetry mode it reads
// under GoHome.
func TestGoHome(t *testing.T) {
	goCmd := LookPath(t, "go")
	cmd := exec.Command(goCmd, "telemetry")
	cmd.Env = []string{"HOME=" + GoHome(t), "PATH=" + os.Getenv("PATH"), "GOTOOLCHAIN=local"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go telemetry: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "off" {
		t.Errorf("go telemetry under GoHome = %q, want off", got)
	}
}

// TestSkipShort runs a test that calls SkipShort in a child go test
// process with -short: it skips locally and fails in CI.
func TestSkipShort(t *testing.T) {
	if os.Getenv("SUMD_SKIPSHORT_CHILD") != "" {
		SkipShort(t, "the child's reason")
		return
	}
	for _, tc := range []struct{ ci, want string }{
		{"", "--- SKIP: TestSkipShort"},
		{"true", "--- FAIL: TestSkipShort"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSkipShort$", "-test.short", "-test.v")
		cmd.Env = append(os.Environ(), "SUMD_SKIPSHORT_CHILD=1", "CI="+tc.ci)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "the child's reason") {
			t.Errorf("CI=%q, -short: want %q with the reason, got:\n%s", tc.ci, tc.want, out)
		}
	}
}

// TestNeed runs tests that call Need and LookPath for what is missing in a
// child go test process: each skips locally, saying what it needs, and
// fails in CI, which is the point of this package; one given no error
// passes in both.
func TestNeed(t *testing.T) {
	if os.Getenv("SUMD_NEED_CHILD") != "" {
		t.Run("need", func(t *testing.T) { Need(t, "the child's tool", errors.New("not installed")) })
		t.Run("lookpath", func(t *testing.T) { LookPath(t, "sumd-testenv-no-such-command") })
		t.Run("found", func(t *testing.T) { Need(t, "the child's tool", nil) })
		return
	}
	for _, tc := range []struct{ ci, want string }{
		{"", "SKIP"},
		{"false", "SKIP"},
		{"true", "FAIL"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNeed$", "-test.v")
		cmd.Env = append(os.Environ(), "SUMD_NEED_CHILD=1", "CI="+tc.ci)
		out, _ := cmd.CombinedOutput()
		for _, want := range []string{
			"--- " + tc.want + ": TestNeed/need", "the child's tool",
			"--- " + tc.want + ": TestNeed/lookpath", "sumd-testenv-no-such-command",
			"--- PASS: TestNeed/found",
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("CI=%q: want %q in the child's output, got:\n%s", tc.ci, want, out)
			}
		}
	}
}
