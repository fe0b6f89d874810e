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
