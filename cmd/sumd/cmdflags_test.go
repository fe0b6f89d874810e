package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFlagsOnly: every command that takes only flags refuses an argument
// after them with exit status 2, its hint, and nothing created; a mistake
// in a flag gets configError's hint.
func TestFlagsOnly(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	for _, tt := range []struct {
		args []string
		hint string
	}{
		{[]string{"serve", "-db", f("s.db")}, "sumd serve takes only flags; see sumd serve -h"},
		{[]string{"copy", "-from", f("a.db"), "-to", f("b.db")}, "sumd copy takes only flags: -from DB -to DB"},
		{[]string{"sync", "-db", f("s.db"), "-create", "-registry", "r.example/p", "-cosign-key", f("c.pub")}, "sumd sync takes only flags; see sumd sync -h"},
		{[]string{"backup", "-db", f("s.db"), "-o", f("b.db")}, "the copy is -o FILE"},
		{[]string{"restore", "-db", f("s.db"), "-key", f("k.key"), "-from", f("m.db")}, "sumd restore takes flags only"},
		{[]string{"mirror", "-mirror", f("m.db")}, "sumd mirror takes flags only (or: sumd mirror export|import); see sumd mirror -h"},
		{[]string{"mirror", "export", "-mirror", f("m.db"), "-o", f("b")}, "the bundle file is -o BUNDLE"},
		{[]string{"key", "rotate", "-db", f("s.db"), "-new-key", f("n.key")}, "use: sumd key rotate -new-key FILE, then later sumd key retire -retire OLD_VKEY"},
		{[]string{"status", "-url", "http://127.0.0.1:1"}, "sumd status takes only flags; see sumd status -h"},
		{[]string{"tuf", "init", "-name", "x", "-dir", f("tuf")}, "sumd tuf init takes only flags; see sumd tuf init -h"},
		{[]string{"tuf", "rotate-root", "-dir", f("tuf")}, "sumd tuf rotate-root takes only flags; see sumd tuf rotate-root -h"},
		{[]string{"keygen", "-name", "x", "-dir", f("keys")}, "sumd keygen takes only flags: sumd keygen -name NAME"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append(tt.args, "stray"), &stdout, &stderr)
		want := "sumd: error: unexpected argument \"stray\"\nhint: " + tt.hint + "\n"
		if code != 2 || stderr.String() != want {
			t.Errorf("sumd %s stray: exit status %d, stderr:\n%s\nwant 2 and:\n%s", strings.Join(tt.args, " "), code, &stderr, want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("a refused command line created %s", entries[0].Name())
	}

	var stderr bytes.Buffer
	if code := run([]string{"copy", "-from", f("a.db"), "-to", f("b.db"), "-log-level", "loud"}, &stderr, &stderr); code != 2 ||
		!strings.HasSuffix(stderr.String(), "\nhint: fix the option named above; see -h for every option, its default and its SUMD_* variable\n") {
		t.Errorf("sumd copy -log-level loud: exit status %d, output:\n%s\nwant 2 and configError's hint", code, &stderr)
	}
	stderr.Reset()
	if code := run([]string{"tuf", "status", "-h"}, &stderr, &stderr); code != 0 || !strings.HasPrefix(stderr.String(), "Usage: sumd tuf status") {
		t.Errorf("sumd tuf status -h: exit status %d, output:\n%s\nwant 0 and the usage text", code, &stderr)
	}
}

// TestHelpExamples: for every command and step "sumd help" lists, "sumd
// help COMMAND" prints its own usage, and its example runs that command
// (sumd key retire -h showed the rotate command).
func TestHelpExamples(t *testing.T) {
	_, list, _ := strings.Cut(usage, "\nUsage:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	var cmds [][]string
	for line := range strings.Lines(list) {
		synopsis, _, _ := strings.Cut(strings.TrimSpace(line), "  ") // then the description
		words := strings.Fields(synopsis)
		if len(words) < 2 || words[0] != "sumd" || words[1] == "help" {
			continue
		}
		var cmd []string
		for _, w := range words[1:] {
			if !regexp.MustCompile(`^[a-z][a-z|-]*$`).MatchString(w) {
				break
			}
			cmd = append(cmd, w)
		}
		if len(cmd) == 2 && strings.Contains(cmd[1], "|") { // sumd mirror export|import
			for _, step := range strings.Split(cmd[1], "|") {
				cmds = append(cmds, []string{cmd[0], step})
			}
			continue
		}
		cmds = append(cmds, cmd)
	}
	if len(cmds) < 20 {
		t.Fatalf("found %d commands in the usage text, want every one: %q", len(cmds), cmds)
	}
	for _, cmd := range cmds {
		name := "sumd " + strings.Join(cmd, " ")
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"help"}, cmd...), &stdout, &stderr); code != 0 {
			t.Errorf("sumd help %s: exit status %d\n%s", strings.Join(cmd, " "), code, &stderr)
			continue
		}
		text := stdout.String()
		if !strings.HasPrefix(text, "Usage: "+name+" ") && !strings.HasPrefix(text, "Usage: "+name+"\n") {
			t.Errorf("sumd help %s prints the usage of another command:\n%s", strings.Join(cmd, " "), text)
		}
		_, example, ok := strings.Cut(text, "\nExample:\n")
		example = regexp.MustCompile(`^\s*([A-Z_]+=\S* )*`).ReplaceAllString(example, "") // COSIGN_PASSWORD=... sumd oci push
		if ok && !strings.HasPrefix(example, name+" ") {
			t.Errorf("the example of %s runs another command:\n%s", name, example)
		}
	}
}
