package testenv

import (
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
