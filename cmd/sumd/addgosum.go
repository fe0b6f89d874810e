package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/seed"
	"github.com/sumd-project/sumd/internal/upstream"
)

// maxListed caps the versions listed one per line; the count says the rest.
const maxListed = 20

// addGoSums records the module versions of the go.sum files paths name
// (files, or directories walked for go.sum files). Versions with both lines
// are recorded; those with one line are listed by file and line and,
// with -upstream, completed from the module proxies first.
func addGoSums(cfg *config.Add, paths []string, stdout, stderr io.Writer) error {
	fetch, err := gosumFetcher(cfg, stderr)
	if err != nil {
		return err
	}
	files, err := seed.Files(paths)
	if err != nil {
		return withHint(err, "pass -gosum a go.sum file or a directory holding go.sum files; more may follow the flags")
	}
	set, err := seed.Read(files)
	if err != nil {
		return withHint(err, "nothing was added; fix or remove the line named above")
	}
	fmt.Fprintf(stdout, "read %d go.sum file(s): %d lines, %d complete module versions, %d with one line only\n",
		len(files), set.Lines, len(set.Records), len(set.Incomplete))
	if cfg.Strict && len(set.Incomplete) > 0 {
		listIncomplete(stderr, set.Incomplete)
		return withHint(fmt.Errorf("%d module version(s) have only one of their two go.sum lines; nothing was added (-strict)", len(set.Incomplete)),
			"drop -strict to add the complete versions, or add -upstream PROXY to fetch the others")
	}
	recs, left, failed := set.Records, set.Incomplete, []seed.Failure(nil)
	if fetch != nil && len(left) > 0 {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		done, f, err := seed.Complete(ctx, fetch, left, 8)
		if err != nil {
			return fmt.Errorf("nothing was added: %w", err)
		}
		fmt.Fprintf(stdout, "completed %d of %d from %s\n", len(done), len(left), cfg.Upstream)
		recs, left, failed = append(recs, done...), nil, f
	}
	if len(recs) == 0 {
		listIncomplete(stderr, left)
		listFailed(stderr, failed)
		return withHint(errors.New("no complete module versions to add"), "a record needs both go.sum lines (zip and go.mod); add -upstream PROXY to fetch the missing ones")
	}
	added, err := record(cfg, recs, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %d records, %d already present (tree size %d)\n", added.new, int64(len(recs))-added.new, added.size)
	listIncomplete(stderr, left)
	listFailed(stderr, failed)
	if n := len(left) + len(failed); n > 0 {
		fmt.Fprintf(stdout, "not recorded: %d module version(s) with one go.sum line only; a go command whose go.sum lacks them "+
			"looks them up and gets 404 until they are recorded: run again with -upstream PROXY, or let sumd serve -upstream PROXY "+
			"record each on its first lookup\n", n)
	}
	return nil
}

// gosumFetcher returns the fetcher of -upstream, that of sumd serve, or nil.
func gosumFetcher(cfg *config.Add, stderr io.Writer) (seed.Fetch, error) {
	if cfg.Upstream == "" {
		if cfg.UpstreamAuth != "" {
			return nil, usageError(errors.New("upstream-auth needs -upstream"), "set -upstream to your module proxy, e.g. -upstream https://athens.corp.example")
		}
		return nil, nil
	}
	sources, err := upstream.ParseList(cfg.Upstream)
	if err != nil {
		return nil, usageError(fmt.Errorf("upstream: %w", err), "give module proxy URLs as in GOPROXY, e.g. -upstream https://athens.corp.example,file:///srv/mirror")
	}
	if err := upstream.ApplyAuth(sources, cfg.UpstreamAuth); err != nil {
		return nil, usageError(fmt.Errorf("upstream-auth: %w", err), "use none, basic:USER:FILE, bearer:FILE, netrc[:FILE], or HOST=AUTH,HOST=AUTH")
	}
	f, err := upstream.NewFetcher(upstream.FetcherOptions{Sources: sources, Logger: config.NewLogger(cfg.Log, stderr)})
	if err != nil {
		return nil, withHint(err, "check -upstream and -upstream-auth")
	}
	return f.Fetch, nil
}

// listIncomplete lists versions with one go.sum line, as "sumd: FILE:LINE: …".
func listIncomplete(w io.Writer, incs []seed.Incomplete) {
	for i, inc := range incs {
		if i == maxListed {
			fmt.Fprintf(w, "sumd: ... and %d more with one go.sum line only\n", len(incs)-maxListed)
			break
		}
		fmt.Fprintf(w, "sumd: %s\n", inc.Describe())
	}
}

// listFailed lists the versions -upstream could not complete.
func listFailed(w io.Writer, failed []seed.Failure) {
	for i, f := range failed {
		if i == maxListed {
			fmt.Fprintf(w, "sumd: ... and %d more not completed from upstream\n", len(failed)-maxListed)
			break
		}
		fmt.Fprintf(w, "sumd: %s: not completed from upstream: %v\n", f.Describe(), f.Err)
	}
}
