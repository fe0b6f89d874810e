package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScript runs the scripts in testdata/script: the sumd binary built by
// TestMain, run as an operator types it. Each script says what it proves.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup:               setupScript,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitCode,
			"perm":     cmdPerm,
		},
	})
}

// setupScript puts sumd on PATH and isolates the script from the developer's
// own configuration and credentials: HOME is the work directory's, and no
// SUMD_* variable, NETRC or CREDENTIALS_DIRECTORY is set unless the script
// sets it.
func setupScript(env *testscript.Env) error {
	vars := env.Vars[:0]
	for _, kv := range env.Vars {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "SUMD_") && k != "NETRC" && k != "CREDENTIALS_DIRECTORY" {
			vars = append(vars, kv)
		}
	}
	env.Vars = vars
	home := filepath.Join(env.WorkDir, "home")
	env.Setenv("HOME", home)
	env.Setenv("PATH", filepath.Dir(sumdBin)+string(os.PathListSeparator)+env.Getenv("PATH"))
	return os.Mkdir(home, 0o700)
}

// cmdExitCode runs "exitcode N program args..." like exec, keeping its
// output for stdout and stderr, and checks that it exits with status N.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N program [args...]")
	}
	err := ts.Exec(args[1], args[2:]...)
	got := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%v", err)
	}
	if want, err := strconv.Atoi(args[0]); err != nil || got != want {
		ts.Fatalf("%s exited with status %d, want %s", args[1], got, args[0])
	}
}

// cmdPerm checks "perm MODE file": that file has the octal permission bits MODE.
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: perm MODE file")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	if got := fi.Mode().Perm(); uint64(got) != want {
		ts.Fatalf("%s has mode %#o, want %s", args[1], got, args[0])
	}
}
