package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Every command declares its flags in internal/config (one struct, whose
// Load function reads the flags, the SUMD_* variables and the YAML file)
// and loads them here, the same way: a mistake in them is a usage error
// (exit status 2) with configError's hint, and -h returns flag.ErrHelp,
// which report turns into exit status 0.

// A loader is one of internal/config's Load functions: it returns the
// command's configuration and the arguments left after the flags.
type loader[C any] func(args, env []string, w io.Writer) (C, []string, error)

// loadArgs loads the configuration of a command that takes arguments after
// its flags, and returns those arguments (also with an error, for a command
// that explains a stray argument first).
func loadArgs[C any](load loader[C], args []string, stderr io.Writer) (C, []string, error) {
	cfg, rest, err := load(args, os.Environ(), stderr)
	if err != nil {
		return cfg, rest, configError(err)
	}
	return cfg, rest, nil
}

// loadFlags loads the configuration of a command that takes only flags: an
// argument after them is a usage error with hint (onlyFlags, unless the
// command has a more helpful one).
func loadFlags[C any](load loader[C], args []string, stderr io.Writer, hint string) (C, error) {
	cfg, rest, err := loadArgs(load, args, stderr)
	if err == nil && len(rest) > 0 {
		err = usageError(fmt.Errorf("unexpected argument %q", rest[0]), hint)
	}
	return cfg, err
}

// onlyFlags is the hint for an argument given to cmd ("serve", "tuf
// init"), a command that takes only flags.
func onlyFlags(cmd string) string {
	return "sumd " + cmd + " takes only flags; see sumd " + cmd + " -h"
}

// askHelp reports whether args, those of a command with steps (sumd tuf
// STEP) or none (sumd version), ask for its usage text, as -h asks the
// flag package.
func askHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help")
}

// configError adds a hint to a configuration error.
func configError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError(err, "fix the option named above; see -h for every option, its default and its SUMD_* variable")
}

// stepError is the error for a command with steps (sumd key, tuf, oci)
// given none, or one it does not have; steps lists its steps.
func stepError(cmd string, args []string, steps string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("sumd %s needs a step: %s", cmd, steps)
	}
	return fmt.Errorf("unknown step %q of sumd %s: want %s", args[0], cmd, steps)
}
