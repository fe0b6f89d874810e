package packaging

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
)

// TestDocsMatchCode checks what README and docs/ say about the options and
// the Makefile against the code: every sumd serve option is in README's
// option table, with its default; every Makefile target with a ## comment
// is listed in README's Development section and by make help; no doc
// names a value the options refuse.
func TestDocsMatchCode(t *testing.T) {
	readme := readFile(t, "../README.md")
	var usage strings.Builder
	config.LoadServe([]string{"-h"}, nil, &usage)
	table := map[string]string{} // option → default column
	for _, m := range regexp.MustCompile("(?m)^\\| (`[a-z-]+`(?:, `[a-z-]+`)*) \\|\\s*([^|]*?)\\s*\\|").FindAllStringSubmatch(readme, -1) {
		for _, name := range strings.Split(m[1], ", ") {
			table[strings.Trim(name, "`")] = strings.TrimSpace(m[2])
		}
	}
	// Both sides are read by their format: one read as nothing would let
	// every option go unchecked.
	if _, ok := table["listen"]; !ok || len(table) < 20 {
		t.Errorf("read %d options from README's option table, without listen: it no longer reads the table", len(table))
	}
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(usage.String(), -1)
	if !slices.ContainsFunc(flags, func(m []string) bool { return m[1] == "listen" }) || len(flags) < 20 {
		t.Errorf("read %d options from sumd serve -h, without listen: it no longer reads the usage text:\n%s", len(flags), usage.String())
	}
	for _, m := range flags {
		if _, ok := table[m[1]]; !ok && m[1] != "config" {
			t.Errorf("README's option table lacks serve's %s", m[1])
		}
	}
	if def := table["upstream-auth"]; strings.Contains(def, "`none`") {
		t.Errorf("README gives upstream-auth the default %s; the default is empty", def)
	}

	makefile := readFile(t, "../Makefile")
	targets := regexp.MustCompile(`(?m)^([a-z-]+):.*## `).FindAllStringSubmatch(makefile, -1)
	if !slices.ContainsFunc(targets, func(m []string) bool { return m[1] == "help" }) {
		t.Error("the Makefile has no help target")
	}
	dev := readme[strings.Index(readme, "## Development"):]
	for _, m := range targets {
		if !strings.Contains(dev, "make "+m[1]+" ") {
			t.Errorf("README's Development section does not list make %s", m[1])
		}
	}

	for _, doc := range []string{"../docs/operations.md", "../docs/access.md", "../README.md"} {
		for _, m := range regexp.MustCompile("tls-client-auth[ =`]+([a-z-]+)").FindAllStringSubmatch(readFile(t, doc), -1) {
			if m[1] != config.ClientAuthRequire && m[1] != config.ClientAuthIfGiven && m[1] != "roles" && m[1] != "mode" {
				t.Errorf("%s: -tls-client-auth %s: want require or verify-if-given", doc, m[1])
			}
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
