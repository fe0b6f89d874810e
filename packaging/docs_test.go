package packaging

import (
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
)

// TestDocsMatchCode checks what README and docs/ say about the options and
// the Makefile against the code: every sumd serve option is in README's
// option table, with its default (and so is every option of the other
// subcommands, checkEveryCommand); every Makefile target with a ## comment
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
	checkEveryCommand(t, readme, table)
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

// checkEveryCommand checks that every option of every subcommand's usage
// text is in README's option table (verify's also in its own table), with
// the default the usage text gives: an operator writing a config file for
// sumd tuf init or sumd status reads the table, not only serve's.
func checkEveryCommand(t *testing.T, readme string, table map[string]string) {
	t.Helper()
	// verify's own options are in the table of "Auditing: sumd verify",
	// whose rows name flags as -url URL and give defaults in the text.
	start := strings.Index(readme, "### Auditing")
	auditing := readme[start : start+strings.Index(readme[start+1:], "\n### ")]
	verifyRows := map[string]string{}
	for _, line := range strings.Split(auditing, "\n") {
		if strings.HasPrefix(line, "| `-") {
			for _, m := range regexp.MustCompile("`-([a-z-]+)").FindAllStringSubmatch(strings.SplitN(line, " | ", 2)[0], -1) {
				verifyRows[m[1]] = line
			}
		}
	}
	loaders := map[string]func([]string, []string, io.Writer) error{
		"serve":           func(a, e []string, w io.Writer) error { _, _, err := config.LoadServe(a, e, w); return err },
		"add":             func(a, e []string, w io.Writer) error { _, _, err := config.LoadAdd(a, e, w); return err },
		"verify":          func(a, e []string, w io.Writer) error { _, _, err := config.LoadVerify(a, e, w); return err },
		"keygen":          func(a, e []string, w io.Writer) error { _, _, err := config.LoadKeygen(a, e, w); return err },
		"key rotate":      func(a, e []string, w io.Writer) error { _, _, err := config.LoadKeyRotate(a, e, w); return err },
		"key retire":      func(a, e []string, w io.Writer) error { _, _, err := config.LoadKeyRetire(a, e, w); return err },
		"tuf init":        func(a, e []string, w io.Writer) error { _, _, err := config.LoadTUFInit(a, e, w); return err },
		"tuf publish":     func(a, e []string, w io.Writer) error { _, _, err := config.LoadTUFPublish(a, e, w); return err },
		"tuf rotate-root": func(a, e []string, w io.Writer) error { _, _, err := config.LoadTUFRotateRoot(a, e, w); return err },
		"tuf status":      func(a, e []string, w io.Writer) error { _, _, err := config.LoadTUFStatus(a, e, w); return err },
		"tuf gosumdb":     func(a, e []string, w io.Writer) error { _, _, err := config.LoadTUFGosumdb(a, e, w); return err },
		"oci push":        func(a, e []string, w io.Writer) error { _, _, err := config.LoadOCIPush(a, e, w); return err },
		"sync":            func(a, e []string, w io.Writer) error { _, _, err := config.LoadSync(a, e, w); return err },
		"status":          func(a, e []string, w io.Writer) error { _, _, err := config.LoadStatus(a, e, w); return err },
		"copy":            func(a, e []string, w io.Writer) error { _, _, err := config.LoadCopy(a, e, w); return err },
		"mirror":          func(a, e []string, w io.Writer) error { _, _, err := config.LoadMirror(a, e, w); return err },
		"mirror export":   func(a, e []string, w io.Writer) error { _, _, err := config.LoadMirrorExport(a, e, w); return err },
		"mirror import":   func(a, e []string, w io.Writer) error { _, _, err := config.LoadMirrorImport(a, e, w); return err },
		"backup":          func(a, e []string, w io.Writer) error { _, _, err := config.LoadBackup(a, e, w); return err },
		"backup verify":   func(a, e []string, w io.Writer) error { _, _, err := config.LoadBackupVerify(a, e, w); return err },
		"restore":         func(a, e []string, w io.Writer) error { _, _, err := config.LoadRestore(a, e, w); return err },
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z-]+)[^(\n]* \(env SUMD_[A-Z_]+(?:; default (.*))?\)$`)
	for cmd, load := range loaders {
		var usage strings.Builder
		load([]string{"-h"}, nil, &usage)
		flags := flagLine.FindAllStringSubmatch(usage.String(), -1)
		if len(flags) == 0 {
			t.Errorf("read no options from sumd %s -h: it no longer reads the usage text", cmd)
		}
		for _, m := range flags {
			name, def := m[1], strings.Trim(m[2], `"`)
			if name == "config" {
				continue
			}
			// Durations as written in the table: 1m, not 1m0s.
			if strings.HasSuffix(def, "m0s") || strings.HasSuffix(def, "h0m0s") {
				def = strings.TrimSuffix(strings.TrimSuffix(def, "0s"), "0m")
			}
			col, inTable := table[name]
			row, inVerify := verifyRows[name]
			switch {
			case cmd == "verify" && inVerify:
				if def != "" && def != "false" && !strings.Contains(row, "default "+def) {
					t.Errorf("README's sumd verify table gives -%s no default %s, the one of sumd verify -h:\n%s", name, def, row)
				}
			case !inTable:
				t.Errorf("README's option table lacks %s, an option of sumd %s", name, cmd)
			case def != "" && def != "false" && !strings.Contains(col, "`"+def+"`"):
				t.Errorf("README's option table gives %s the default %q; sumd %s -h says %s", name, col, cmd, def)
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
