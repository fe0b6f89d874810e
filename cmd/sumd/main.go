// Command sumd is a private checksum database for Go modules: a
// transparency log of go.sum lines that the go command uses as its GOSUMDB.
//
// Usage:
//
//	sumd keygen -name NAME [-key-dir keys]   create a signing key
//	sumd serve  [-config FILE] [flags]       serve the database over HTTP
//	sumd add    [flags] MODULE@VERSION DIR|ZIP
//	sumd add    [flags] -gosum FILE|DIR...   record module versions
//	sumd verify -url URL -key VKEY [-state DIR] [-full] [-gosum FILE]
//	                                         audit a checksum database
//	sumd key rotate [flags] -new-key FILE    start signing with a new key too
//	sumd key retire [flags] -retire VKEY     stop signing with the old key
//	sumd tuf init|publish|rotate-root|status|gosumdb [flags]
//	                                         publish the keys through TUF
//	sumd oci push [flags] MODULE@VERSION DIR|ZIP HOST/PREFIX
//	                                         publish a module as a signed OCI artifact
//	sumd sync -registry HOST/PREFIX -cosign-key FILE [flags]
//	                                         record the signed artifacts of registries
//	sumd status -url URL [-json]             print the status of a running server
//	sumd copy -from DB -to DB                copy a log between bbolt and PostgreSQL
//	sumd mirror -mirror FILE [flags]         follow a checksum database into a verified mirror
//	sumd mirror export|import [flags]        carry a mirror across an air gap
//	sumd backup [verify] [flags]             copy (or verify a copy of) the database
//	sumd restore -db FILE -key FILE -from MIRROR
//	                                         rebuild a database from a mirror of it
//	sumd version                             print the version
//	sumd help [COMMAND]                      print the usage, or a command's flags
//
// Run "sumd help COMMAND" or "sumd COMMAND -h" for the flags of a command.
// See README.md.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/sumd-project/sumd/internal/tlog"
)

const usage = `sumd is a private checksum database (GOSUMDB) for Go modules.

Usage:
	sumd keygen -name NAME [-key-dir keys] create a signing key and print the GOSUMDB value
	sumd serve [-config FILE] [flags]      serve the database over HTTP
	sumd add [flags] MODULE@VERSION DIR|ZIP
	                                       hash a module directory or zip and record it
	sumd add [flags] -gosum FILE|DIR...    record the module versions of go.sum files
	sumd verify -url URL -key VKEY [-state DIR] [-full] [-gosum FILE]
	                                       audit a checksum database (sumd or any other)
	sumd key rotate [flags] -new-key FILE  start signing with a new key too (rotation)
	sumd key retire [flags] -retire VKEY   stop signing with the old key
	sumd tuf init -name NAME [-dir DIR] [-keys DIR] [-url URL]
	                                       publish the database's keys as a TUF repository
	sumd tuf publish [flags]               publish the log's current keys (after key rotate|retire)
	sumd tuf rotate-root [flags]           sign the next TUF root (new keys, renewal)
	sumd tuf status [-dir DIR] [-online-keys DIR]
	                                       show the TUF repository's versions and expiries
	sumd tuf gosumdb -tuf-root FILE -tuf-url URL
	                                       print GOSUMDB as learned through TUF
	sumd oci push [flags] MODULE@VERSION DIR|ZIP HOST/PREFIX
	                                       publish a module version as a signed OCI artifact
	sumd sync -registry HOST/PREFIX -cosign-key FILE [flags]
	                                       record the cosign-signed module artifacts of registries
	sumd status -url URL [-json]           print the status of a running server
	sumd copy -from DB -to DB              copy a log between databases (bbolt, PostgreSQL), verified
	sumd mirror -mirror FILE [-origin URL] [-modules LIST]
	                                       follow a checksum database into a verified mirror
	sumd mirror export|import [flags]      carry a mirror across an air gap in a bundle file
	sumd backup -server URL -token-file FILE -o FILE | -db FILE -o FILE
	                                       copy the database consistently, online or offline
	sumd backup verify FILE                verify a copy in full
	sumd restore -db FILE -key FILE -from MIRROR
	                                       rebuild a lost or old database from a mirror of it
	sumd version                           print the version (also sumd --version, sumd -v)
	sumd help [COMMAND]                    print this text, or the flags of COMMAND

Run "sumd help COMMAND" or "sumd COMMAND -h" for the flags of a command.

Example:
	sumd keygen -name sum.example.com
	sumd serve -name sum.example.com -create
	GOSUMDB="$(cat keys/sum.example.com.vkey) http://127.0.0.1:8080" go mod download
	sumd verify -url http://127.0.0.1:8080 -key keys/sum.example.com.vkey -state audit -full
`

// A cliError is an error with a hint saying what to do about it.
type cliError struct {
	err  error
	hint string
	code int // exit status; 0 means 1
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &cliError{err: err, hint: hint} }

// ownHint returns the hint err carries (a *tlog.BeyondHeadError says more
// than any generic one), or else fallback.
func ownHint(err error, fallback string) string {
	var hinted interface{ Hint() string }
	if errors.As(err, &hinted) {
		return hinted.Hint()
	}
	return fallback
}

// usageError is a mistake in the command line: exit status 2.
func usageError(err error, hint string) error { return &cliError{err: err, hint: hint, code: 2} }

// diskFull is the hint for an error of a full disk (ENOSPC): the disk
// holding where, or if where is "", the file the error names (a
// *fs.PathError).
func diskFull(err error, where string) string {
	if pe := (*fs.PathError)(nil); where == "" && errors.As(err, &pe) {
		where = pe.Path
	}
	return "the disk holding " + cmp.Or(where, "the database") + " is full: free space on it, then run the same command again"
}

// interruptContext returns a context that the first SIGINT or SIGTERM
// cancels. Then it stops catching them, so that a second one kills the
// process (their default action) if what should stop on the context is
// stuck in a system call.
func interruptContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// exitDoNotRestart is the exit status of a failure whose hint says not to
// start sumd again on the database (see doNotRestart).
const exitDoNotRestart = 3

// exitCode is an error that only sets the exit status; it has been reported.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the sumd command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) error{
		"keygen":  runKeygen,
		"serve":   runServe,
		"add":     runAdd,
		"key":     runKey,
		"verify":  runVerify,
		"tuf":     runTUF,
		"oci":     runOCI,
		"sync":    runSync,
		"status":  runStatus,
		"copy":    runCopy,
		"mirror":  runMirror,
		"backup":  runBackup,
		"restore": runRestore,
		"version": runVersion,
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			return help(cmds, args[1:], stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	case "--version", "-version", "-v":
		args[0] = "version"
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		return unknownCommand(args[0], stderr)
	}
	return report(cmd(args[1:], stdout, stderr), stderr)
}

// help prints the usage text of the command args name ("serve", "tuf
// init") on stdout: the text its -h prints on stderr.
func help(cmds map[string]func([]string, io.Writer, io.Writer) error, args []string, stdout, stderr io.Writer) int {
	if args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		return unknownCommand(args[0], stderr)
	}
	return report(cmd(append(args[1:], "-h"), stdout, stdout), stderr)
}

func unknownCommand(name string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "sumd: error: unknown command %q\nhint: run \"sumd help\" for the list of commands\n", name)
	return 2
}

// report prints err the sumd way and returns the exit status.
func report(err error, stderr io.Writer) int {
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &code):
		return int(code)
	}
	status := 0
	for _, e := range joined(err) {
		status = cmp.Or(status, reportOne(e, stderr))
	}
	if doNotRestart(err) {
		return exitDoNotRestart
	}
	return status
}

// reportOne prints err, which joins nothing, with its hint if it has one,
// and returns its exit status.
func reportOne(err error, stderr io.Writer) int {
	var ce *cliError
	var hinted interface{ Hint() string }
	switch {
	case errors.As(err, &ce):
		printError(stderr, ce.err)
		fmt.Fprintf(stderr, "hint: %s\n", ce.hint)
		return cmp.Or(ce.code, 1)
	case errors.As(err, &hinted): // from internal/serve
		printError(stderr, err)
		fmt.Fprintf(stderr, "hint: %s\n", hinted.Hint())
	default:
		printError(stderr, err)
	}
	return 1
}

// joined returns the errors err joins (errors.Join, at any depth), or err
// alone: serve.Run joins a failure of its start or run with those of
// closing what it opened, and each has its own hint. An error of several
// causes that is not a join (fmt.Errorf's "%w: %w", tlog's) is one error:
// a join's text is its parts' texts, a line each.
func joined(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var texts []string
	var parts []error
	for _, e := range j.Unwrap() {
		if e != nil {
			texts = append(texts, e.Error())
			parts = append(parts, e)
		}
	}
	if len(parts) == 0 || strings.Join(texts, "\n") != err.Error() {
		return []error{err}
	}
	var out []error
	for _, e := range parts {
		out = append(out, joined(e)...)
	}
	return out
}

// doNotRestart reports whether err says the database must not be opened
// again as it is: a log stopped because its store no longer extends the
// tree it published (rolled back or replaced under it), a store holding
// data beyond its signed head, or one whose head does not extend the head
// a stopped process recorded as lost (tlog.LostHeadError, the refusal a
// restart after the first meets). Restarting the first signs on top of the
// rolled-back head, a fork; the others are refused again and again, every
// RestartSec. Their own status lets a service manager tell them from the
// failures a restart cures (packaging/sumd.service: RestartPreventExitStatus=).
func doNotRestart(err error) bool {
	if errors.As(err, new(*tlog.BeyondHeadError)) || errors.As(err, new(*tlog.LostHeadError)) {
		return true
	}
	return errors.Is(err, tlog.ErrFatal) && errors.As(err, new(*tlog.ForkError))
}

// printError prints err as "sumd: error: ..." lines. Several problems
// reported together (errors.Join) each get the prefix; indented lines are
// details of the line above.
func printError(w io.Writer, err error) {
	// An unavailable store's own text is the one clients get, which hides
	// its cause; the operator gets the cause too.
	if ue := (*tlog.UnavailableError)(nil); errors.As(err, &ue) && ue.Err != nil {
		err = fmt.Errorf("%w\n\tcause: %w", err, ue.Err)
	}
	for _, line := range strings.Split(safeText(err.Error()), "\n") {
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, " ") {
			fmt.Fprintln(w, line)
		} else {
			fmt.Fprintln(w, "sumd: error:", line)
		}
	}
}

// safeText replaces the control characters of s but newline and tab
// (C0, DEL and C1, which terminals obey: ESC sequences that move the
// cursor, clear a line or retitle the window) with U+FFFD. What a server
// or a file says reaches the operator's terminal only through it: errors
// quoting a server's answer, sumd status.
func safeText(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

// safeWriter writes through safeText. Each Write must hold whole runes,
// as fmt's do.
type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, safeText(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if askHelp(args) {
			fmt.Fprint(stderr, "Usage: sumd version\n\nPrint the version of sumd (also sumd --version and sumd -v).\n")
			return flag.ErrHelp
		}
		return usageError(fmt.Errorf("unexpected argument %q", args[0]), "sumd version takes no arguments")
	}
	fmt.Fprintln(stdout, "sumd", version())
	return nil
}

// buildVersion is the version make build stamps into the binary
// (-ldflags "-X main.buildVersion=…", from git describe).
var buildVersion string

// version is the version sumd was built at: the one make build stamped,
// else the module version (go install …@v1.2.3), else "devel".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
