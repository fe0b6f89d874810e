package upstream

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumd-project/sumd/internal/testenv"
)

// TestSumGolangOrgKey checks the built-in key against the one compiled into
// the go command (cmd/go/internal/modfetch/key.go): a wrong key would make
// every cross-check fail closed.
func TestSumGolangOrgKey(t *testing.T) {
	if _, err := note.NewVerifier(SumGolangOrgKey); err != nil {
		t.Fatalf("SumGolangOrgKey does not parse: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "src", "cmd", "go", "internal", "modfetch", "key.go"))
	testenv.Need(t, "the Go sources in GOROOT (cmd/go/internal/modfetch/key.go)", err)
	if !strings.Contains(string(src), `"`+SumGolangOrgKey+`"`) {
		t.Fatalf("SumGolangOrgKey %q is not the key in the go command's source", SumGolangOrgKey)
	}
}
