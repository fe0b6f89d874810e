package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/sumd-project/sumd/internal/audit"
	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/tlscert"
	"github.com/sumd-project/sumd/internal/tuf"
	"github.com/sumd-project/sumd/internal/upstream"
)

// tufGosumdb prints the GOSUMDB value the repository publishes.
func tufGosumdb(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadTUFGosumdb, args, stderr, onlyFlags("tuf gosumdb"))
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
	db, err := fetchDatabase(cfg.TUFTrust, auth, cert, cfg.Cache)
	if err != nil {
		return err
	}
	if len(db.VerifierKeys) > 1 {
		fmt.Fprintf(stderr, "sumd: %s is rotating its key: %d keys sign; GOSUMDB takes the oldest until it is retired, then run this again\n", db.Name, len(db.VerifierKeys))
	}
	fmt.Fprintln(stdout, db.GOSUMDB())
	return nil
}

// verifierKeys returns the verifier keys and URL sumd verify audits with:
// -key and -url, or what the TUF repository publishes (-url, if given,
// wins over the published URL: a proxy path, say); and where the keys
// came from, for the audit's messages (audit.Options.KeySource). cert,
// -client-cert, goes to the repository's host as to the database's.
func verifierKeys(cfg *config.Verify, auth upstream.ClientCreds, cert *tlscert.Reloader, stderr io.Writer) (vkeys []string, url, source string, err error) {
	if cfg.TUFRoot == "" {
		for _, k := range cfg.Key {
			more, err := readVKeys("-key", k)
			if err != nil {
				// Its message says -key; SUMD_KEY or the config file
				// may be what set it.
				if ce := (*cliError)(nil); errors.As(err, &ce) {
					ce.err = cfg.WithSource(ce.err, "key")
				}
				return nil, "", "", err
			}
			vkeys = append(vkeys, more...)
		}
		return vkeys, cfg.URL, "-key", nil
	}
	cache := ""
	if cfg.State != "" {
		cache = tufCacheDir(cfg.State, cfg.TUFURL)
	}
	db, err := fetchDatabase(cfg.TUFTrust, auth, cert, cache)
	if err != nil {
		return nil, "", "", err
	}
	url = cmp.Or(cfg.URL, db.URL)
	if url == "" {
		return nil, "", "", usageError(fmt.Errorf("the TUF repository publishes no URL for %s", db.Name), "pass -url with the database's base URL")
	}
	fmt.Fprintf(stderr, "sumd: learned %d verifier key(s) of %s through TUF\n", len(db.VerifierKeys), db.Name)
	return db.VerifierKeys, url, "the keys its TUF repository publishes (-tuf-root, -tuf-url; a new key is published with sumd tuf publish)", nil
}

// tufCacheDir is where sumd verify -state keeps a TUF repository's
// metadata: one directory per repository URL, under "+tuf", a name no
// database's state directory can have ("+" is not allowed in names). A
// trailing slash names the same repository (as in tuf's pin directory):
// the URL is hashed without it, so that a run spelling it the other way
// still starts from the newest root and timestamp verified.
func tufCacheDir(state, url string) string {
	sum := sha256.Sum256([]byte(strings.TrimSuffix(url, "/")))
	return filepath.Join(state, "+tuf", hex.EncodeToString(sum[:8]))
}

// fetchDatabase learns the database through TUF. A rollback or a signature
// failure is a finding (exit status 1); anything else means the keys could
// not be learned (2).
func fetchDatabase(t config.TUFTrust, auth upstream.ClientCreds, cert *tlscert.Reloader, cache string) (*tuf.Database, error) {
	root, err := readSmallFile(t.TUFRoot, 1<<20)
	if err != nil {
		return nil, usageError(fmt.Errorf("failed to read -tuf-root: %w", err), "give the repository's pinned N.root.json")
	}
	db, err := tuf.Fetch(tuf.ClientOptions{Root: root, URL: t.TUFURL, CacheDir: cache, UserAgent: "sumd/" + version(),
		HTTPClient: authClient(auth, cert, t.TUFURL, 30*time.Second)})
	switch {
	case errors.Is(err, tuf.ErrRollback):
		return nil, &cliError{err: err, code: 1, hint: "the server sends older metadata than this client verified before: do not trust it; see docs/keys.md"}
	case errors.Is(err, tuf.ErrUntrusted):
		return nil, &cliError{err: err, code: 1, hint: "the metadata is not signed by the keys the pinned root trusts: check -tuf-root and -tuf-url; see docs/keys.md"}
	case errors.Is(err, tuf.ErrExpired):
		return nil, &cliError{err: err, code: 2, hint: "the server must keep re-signing its metadata (sumd serve -tuf does): check it runs, and this machine's clock"}
	case errors.Is(err, tuf.ErrNotTUF):
		return nil, &cliError{err: err, code: 2, hint: "the server, or something between (a proxy, a captive portal), answered with a page that is not the TUF repository's: " +
			"check -tuf-url and what that URL answers from here"}
	case errors.Is(err, tuf.ErrCacheInUse):
		return nil, &cliError{err: err, code: 2, hint: "another run (sumd verify with this -state, or sumd tuf gosumdb with this -cache) is using the directory; wait for it to finish and run again"}
	case errors.Is(err, tuf.ErrRefused):
		return nil, &cliError{err: err, code: 2, hint: refusedHint(http.StatusUnauthorized, "")}
	case err != nil:
		return nil, &cliError{err: err, code: 2, hint: cmp.Or(certHint(err), "check -tuf-url (the repository's base URL, such as https://sum.example.com/tuf) and that it is reachable")}
	}
	return db, nil
}

// failedReport is the JSON report of a run that could not learn its keys.
// Metadata rolled back or not verifying is a finding (fetchDatabase's exit
// status 1), listed as a tuf problem: a report whose problems are empty
// says nothing was found.
func failedReport(err error) *audit.Report {
	rep := &audit.Report{Checks: []string{}, Problems: []audit.Problem{}, Error: err.Error()}
	if errors.Is(err, tuf.ErrRollback) || errors.Is(err, tuf.ErrUntrusted) {
		rep.Problems = append(rep.Problems, audit.Problem{Kind: audit.KindTUF, Message: safeText(err.Error())})
	}
	return rep
}
