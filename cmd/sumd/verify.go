package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/mod/module"
	"golang.org/x/term"

	"github.com/sumd-project/sumd/internal/audit"
	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/upstream"
)

// runVerify audits a checksum database. Exit status: 0 when every check
// passed, 1 when a problem was found (even if the audit then stopped), 2
// when the audit could not run to the end and found nothing (bad flags,
// network or HTTP failure, unusable state directory).
func runVerify(args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := loadArgs(config.LoadVerify, args, stderr)
	if err != nil {
		return err
	}
	auth, err := clientAuth(cfg.Auth)
	if err != nil {
		return err
	}
	cert, err := clientCert(cfg.ClientCert)
	if err != nil {
		return err
	}
	vkeys, dbURL, keySource, err := verifierKeys(cfg, auth, cert, stderr)
	if err != nil {
		if cfg.JSON && cfg.TUFRoot != "" {
			printJSON(stdout, failedReport(err))
		}
		return err
	}
	recheck, err := rechecker(cfg)
	if err != nil {
		return err
	}
	files := rest // go.sum files: -gosum FILE and any arguments after the flags
	if cfg.Gosum != "" {
		files = append([]string{cfg.Gosum}, rest...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	bar := newProgress(stderr, "auditing records")
	rep, err := audit.Run(ctx, audit.Options{
		URL: dbURL, VerifierKey: vkeys[0], VerifierKeys: vkeys[1:], KeySource: keySource, StateDir: cfg.State, Full: cfg.Full, GoSum: files,
		Parallel: cfg.Parallel, UserAgent: "sumd-verify/" + version(), Progress: bar.update, Auth: auth.Apply,
		Transport: sumdbCertTransport(cert, dbURL), Recheck: recheck, RecheckSince: int64(cfg.Since),
	})
	bar.finish()
	if cfg.JSON {
		printJSON(stdout, rep)
	} else {
		printReport(stdout, rep)
	}
	switch {
	case err != nil:
		return cannotRun(err, len(rep.Problems)+rep.ProblemsOmitted)
	case !rep.OK:
		return exitCode(1)
	}
	return nil
}

// cannotRun reports an audit that could not run to the end after finding
// found problems. Without a finding it says nothing either way about the
// database: exit status 2, which scripts read as "try again later". A
// problem found before it stopped is a finding all the same: exit status 1,
// as is the server's answer that the data is damaged in its database.
func cannotRun(err error, found int) error {
	var fe *audit.FetchError
	var hint string // what to do about the cause; empty: nothing to add
	switch {
	case certHint(err) != "":
		hint = certHint(err)
	case errors.As(err, &fe) && (fe.Status == http.StatusUnauthorized || fe.Status == http.StatusForbidden):
		hint = refusedHint(fe.Status, "sumd verify needs a reader's, and -full (data tiles) an auditor's")
	case errors.Is(err, sumdbclient.ErrDamaged):
		// The server found the data damaged and refused to serve it: a
		// finding about the database, whatever else the audit found.
		return &cliError{err: err, code: 1, hint: "the server's database is damaged (a record or index entry changed behind its back), a finding (exit status 1): " +
			"its log names the data; it should restore the database from a backup or a mirror (sumd serve -verify full checks it at start)"}
	case errors.Is(err, sumdbclient.ErrOffline):
		hint = "the server is a mirror that cannot reach its origin, and lacks a version a go.sum line names: " +
			"audit again once it reaches its origin (or imports a newer bundle), or audit the origin"
	case errors.As(err, new(*sumdbclient.BodyError)) || errors.Is(err, sumdbclient.ErrTooLarge):
		hint = "the server, or something between (a proxy, a captive portal), answered with a page that is not the checksum database protocol: " +
			"check -url and what that URL answers from here"
	case errors.As(err, &fe):
		hint = "check -url and that the server is reachable; failed requests were retried before giving up"
	case errors.Is(err, audit.ErrSincePastEnd):
		hint = "give -since a record id below the tree's size, or leave it out to re-hash every record"
	case errors.Is(err, audit.ErrStateInUse):
		hint = "another sumd verify is running with this -state directory; wait for it to finish"
	case errors.Is(err, context.Canceled):
		hint = "the audit was interrupted; with -state, the next run resumes from the last checkpoint"
	}
	if found > 0 {
		return &cliError{err: err, code: 1, hint: fmt.Sprintf("the audit stopped after finding %d problem(s), reported above "+
			"(exit status 1); to audit the rest: %s", found, cmp.Or(hint, "fix the cause above and run again"))}
	}
	return &cliError{err: err, code: 2, hint: cmp.Or(hint, "nothing was concluded about the database; fix the cause above and run again")}
}

// printJSON prints the report as one indented JSON object: the contract
// for scripts is audit.Report's JSON form.
func printJSON(w io.Writer, rep *audit.Report) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rep)
}

// printReport prints the human summary. Everything that came from the
// server is cleaned of control characters first.
func printReport(w io.Writer, rep *audit.Report) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-9s %s\n", label, clean(fmt.Sprintf(format, args...)))
	}
	line("database", "%s at %s", rep.Database, rep.URL)
	if rep.Tree != nil {
		line("tree", "%d records, hash %s", rep.Tree.Size, rep.Tree.Hash)
	}
	if rep.Previous != nil {
		line("previous", "%d records, hash %s (the head saved by the last run)", rep.Previous.Size, rep.Previous.Hash)
	}
	for _, w := range rep.Warnings {
		line("warning", "%s", w.Message)
	}
	line("checked", "%s", cmp.Or(strings.Join(rep.Checks, ", "), "nothing passed"))
	if rep.RecordsAudited > 0 {
		line("records", "%d audited (%d to %d) in %s, %.0f records/s", rep.RecordsAudited, rep.RecordsFrom,
			rep.RecordsFrom+rep.RecordsAudited-1, time.Duration(rep.Seconds*float64(time.Second)).Round(time.Millisecond), rep.RecordsPerSecond)
	}
	if rep.GosumLines > 0 {
		unrecorded := ""
		if n := rep.GosumUnrecordedCount; n > 0 {
			unrecorded = fmt.Sprintf("; %d go.mod-only line(s) not recorded yet (not a problem)", n)
		}
		line("go.sum", "%d lines checked%s", rep.GosumLines, unrecorded)
	}
	line("result", "%s", verdict(rep))
	shown := rep.Problems[:min(len(rep.Problems), maxHumanProblems)]
	if len(shown) > 0 {
		fmt.Fprintln(w)
	}
	for _, p := range shown {
		printProblem(w, p)
	}
	if more := len(rep.Problems) - len(shown) + rep.ProblemsOmitted; more > 0 {
		fmt.Fprintf(w, "... and %d more problem(s); -json lists them\n", more)
	}
	printUnrecorded(w, rep)
}

// printUnrecorded explains the go.mod-only lines the database has not
// recorded: no problem, but go commands whose go.sum lacks those lines look
// the versions up and get a 404 until they are recorded.
func printUnrecorded(w io.Writer, rep *audit.Report) {
	if rep.GosumUnrecordedCount == 0 {
		return
	}
	fmt.Fprintf(w, "\nnot recorded yet: %d version(s) appear in a go.sum file by one line only (mostly the go.mod line, which\n"+
		"the go command writes alone for versions it needs only for version selection), and a record needs both\n"+
		"hashes. Not a problem: but a go command whose go.sum lacks them looks them up and gets 404 until they are\n"+
		"recorded: sumd add -gosum FILE -upstream PROXY, or sumd serve -upstream PROXY on their first lookup.\n",
		rep.GosumUnrecordedCount)
	shown := rep.GosumUnrecorded[:min(len(rep.GosumUnrecorded), maxHumanProblems)]
	for _, u := range shown {
		fmt.Fprintf(w, "%s\n", clean(u.Message))
	}
	if more := rep.GosumUnrecordedCount - len(shown); more > 0 {
		fmt.Fprintf(w, "... and %d more; -json lists up to 1000\n", more)
	}
}

// maxHumanProblems keeps the human summary readable; -json has them all.
const maxHumanProblems = 20

func verdict(rep *audit.Report) string {
	n := len(rep.Problems) + rep.ProblemsOmitted
	switch {
	case rep.OK:
		return "OK: no problems found"
	case rep.Error != "" && n == 0:
		return "INCOMPLETE: the audit could not run to the end"
	case rep.Error != "":
		return fmt.Sprintf("FAILED: %d problem(s) found before the audit stopped", n)
	}
	return fmt.Sprintf("FAILED: %d problem(s) found", n)
}

// printProblem prints one problem, with any signed heads in full.
func printProblem(w io.Writer, p audit.Problem) {
	fmt.Fprintf(w, "%s: %s\n", p.Kind, clean(p.Message))
	for _, h := range p.Heads {
		fmt.Fprintf(w, "    signed head %s:\n", h.Role)
		for l := range strings.Lines(clean(h.Note)) {
			fmt.Fprintf(w, "        %s", l)
		}
		if !strings.HasSuffix(h.Note, "\n") {
			fmt.Fprintln(w)
		}
	}
}

// clean replaces control characters but newlines (and tabs), C1 ones
// too, so that a hostile server cannot write escape sequences to the
// auditor's terminal: safeText.
func clean(s string) string { return safeText(s) }

// minBarRecords is the smallest full audit that gets a progress bar: a
// smaller one takes well under a second.
const minBarRecords = 20_000

// progress draws a progress bar with rate and ETA on stderr, only when
// stderr is a terminal, so that logs and pipes get the summary alone.
type progress struct {
	w    io.Writer
	on   bool
	what string
	bar  *progressbar.ProgressBar
}

func newProgress(stderr io.Writer, what string) *progress {
	f, ok := stderr.(*os.File)
	return &progress{w: stderr, on: ok && term.IsTerminal(int(f.Fd())), what: what}
}

func (p *progress) update(done, total int64) {
	if !p.on || total < minBarRecords {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	p.bar.Set64(done)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// recheckFetcherOptions are -recheck's fetcher options. No TempDir:
// verify has no database, so no <db>.tmp, and no -tmp-dir; a zip over 1
// MiB goes to a temporary file in $TMPDIR (scratch.Create's directory for
// one-shot callers), removed once hashed, as README says of -recheck. No
// free-space floor either: there are no commits for it to protect.
func recheckFetcherOptions(sources []upstream.Source) upstream.FetcherOptions {
	return upstream.FetcherOptions{Sources: sources, MinFree: -1}
}

// rechecker returns the re-hasher of -recheck: the upstream fetcher of
// sumd serve, whose validation and hashing are the go command's. A version
// the proxies no longer serve, or now serve invalid, is "unavailable".
func rechecker(cfg *config.Verify) (audit.Rechecker, error) {
	if cfg.Recheck == "" {
		if cfg.Since != 0 || cfg.RecheckAuth != "" {
			return nil, usageError(errors.New("-since and -recheck-auth need -recheck"), "add -recheck with your module proxy, e.g. -recheck https://proxy.corp.example")
		}
		return nil, nil
	}
	sources, err := parseSources("recheck", cfg.Recheck, cfg.RecheckAuth, "https://athens.corp.example")
	if err != nil {
		return nil, err
	}
	f, err := upstream.NewFetcher(recheckFetcherOptions(sources))
	if err != nil {
		return nil, withHint(err, "check -recheck and -recheck-auth")
	}
	return func(ctx context.Context, m module.Version) (gosum.Record, error) {
		rec, err := f.Fetch(ctx, m)
		var ue *upstream.Error
		if errors.As(err, &ue) && ue.Gone() {
			return rec, fmt.Errorf("%w: %v", audit.ErrUnavailable, err)
		}
		return rec, err
	}, nil
}
