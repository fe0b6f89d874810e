package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/serve"
)

// maxStatus caps the /status answer read: it is a few KB.
const maxStatus = 1 << 20

// runStatus prints the status of a running server.
func runStatus(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadStatus, args, stderr, onlyFlags("status"))
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
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	client, ct := authCertClient(auth, cert, cfg.URL, 0)
	base := strings.TrimSuffix(cfg.URL, "/")
	raw, st, err := fetchStatus(ctx, client, base+"/status")
	var answer *answerError
	if errors.As(err, &answer) && ct.presented() {
		// A certificate is a credential, though no header shows it; one
		// the server never asked for was not sent.
		answer.sent = true
	}
	refused := answer != nil && (answer.status == http.StatusUnauthorized || answer.status == http.StatusForbidden)
	switch {
	case answer != nil && ownPathHint(cfg.URL) != "":
		// The admin API answers 401 to anyone without an admin's
		// credential: a path that is not a base URL is the mistake.
		return withHint(err, ownPathHint(cfg.URL))
	case refused && !answer.sent && !cfg.JSON:
		// No credential sent (the image's health check has none): learn
		// what anonymous clients may. A 403 to no credential is a server
		// of client certificates only, given none (-client-cert). A
		// credential refused — given with -auth or -client-cert, or found
		// in .netrc — is a mistake to report, and -json promises the
		// status itself.
		return checkHealth(ctx, client, base+"/healthz", healthOnly(answer.status), stdout)
	case refused && !answer.sent && answer.status == http.StatusForbidden:
		return withHint(err, "the server accepts only client certificates (-tls-client-roles): pass an auditor's with -client-cert FILE -client-key FILE; without -json, sumd status checks /healthz instead")
	case refused:
		return withHint(err, refusedHint(answer.status, "the status needs an auditor's"))
	case answer != nil && answer.status == http.StatusNotFound:
		return withHint(err, "the server has no "+base+"/status: -url's path is probably wrong: give the server's base URL, the one sumd serve printed in its GOSUMDB line")
	case err != nil:
		return withHint(err, cmp.Or(certHint(err), unreachableHint))
	}
	if cfg.JSON {
		stdout.Write(raw)
	} else {
		printServerStatus(stdout, st)
	}
	if st.Health.State == serve.Unavailable {
		return exitCode(1)
	}
	return nil
}

// unreachableHint is the hint for a server that did not answer.
const unreachableHint = "check -url: the base URL sumd serve printed in its GOSUMDB line"

// An answerError is an answer other than 200 OK.
type answerError struct {
	status int
	sent   bool // the request carried a credential (-auth, or .netrc)
	err    error
}

func (e *answerError) Error() string { return e.err.Error() }

// ownPaths are the first path elements of sumd's own endpoints under a
// server's base URL, and what they are: a -url holding one is not a base
// URL.
var ownPaths = map[string]string{
	"admin": "sumd's admin API", "status": "sumd's status", "healthz": "sumd's health check", "metrics": "sumd's metrics",
	"lookup": "a lookup", "tile": "a tile", "latest": "the signed tree head", "tuf": "sumd's TUF repository",
}

// ownPathHint is the hint for raw, a -url whose path holds one of sumd's
// own endpoints, naming the base URL it most likely meant; "" for any
// other URL.
func ownPathHint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	elems := strings.Split(u.Path, "/")
	for i, e := range elems {
		what, ok := ownPaths[e]
		if !ok {
			continue
		}
		path := u.Path
		u.Path, u.RawPath, u.RawQuery, u.Fragment = strings.Join(elems[:i], "/"), "", "", ""
		return "-url's path " + path + " is " + what + ", not the server's base URL: use -url " + u.String() + ", the base URL sumd serve printed in its GOSUMDB line"
	}
	return ""
}

// fetchStatus reads and parses GET url.
func fetchStatus(ctx context.Context, client *http.Client, url string) ([]byte, *serve.Status, error) {
	resp, raw, err := fetch(ctx, client, url, "status")
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		sent := resp.Request != nil && resp.Request.Header.Get("Authorization") != ""
		return nil, nil, &answerError{resp.StatusCode, sent, fmt.Errorf("GET %s: %s: %s", url, resp.Status, firstLine(raw))}
	}
	var st serve.Status
	if err := json.Unmarshal(raw, &st); err != nil || st.Health.State == "" {
		return nil, nil, errors.Join(fmt.Errorf("GET %s: not a sumd status (%s)", url, resp.Header.Get("Content-Type")), err)
	}
	return raw, &st, nil
}

// fetch reads GET url (the server's what, for errors): the answer, its
// body closed, and at most maxStatus bytes of that body.
func fetch(ctx context.Context, client *http.Client, url, what string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the %s: %w", what, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxStatus))
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the %s: %w", what, err)
	}
	return resp, raw, nil
}

// healthOnly says why sumd status printed the health and nothing else,
// after /status answered status (401 or 403) to no credential.
func healthOnly(status int) string {
	if status == http.StatusForbidden {
		return "only /healthz was checked (/status needs an auditor's client certificate, -client-cert)"
	}
	return "only /healthz was checked (/status needs an auditor's credential, -auth)"
}

// checkHealth is sumd status without a credential, of a server whose
// /status asked for one: with -read-auth on, only /healthz is open to
// anonymous clients, and the container image's HEALTHCHECK has no
// credential to give; nor, unless given -client-cert, to a server of
// client certificates only (-tls-client-roles). Like the status, it exits 0 while the log serves
// (ok or degraded) and 1 when it does not; why says why only the health.
func checkHealth(ctx context.Context, client *http.Client, url, why string, stdout io.Writer) error {
	resp, body, err := fetch(ctx, client, url, "health")
	switch {
	case err != nil:
		return withHint(err, cmp.Or(certHint(err), unreachableHint))
	case resp.StatusCode != http.StatusOK:
		return withHint(fmt.Errorf("GET %s: %s: %s", url, resp.Status, firstLine(body)), why)
	}
	fmt.Fprintf(stdout, "%s: %s\n", why, safeText(firstLine(body)))
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// printServerStatus prints st for people. What the server says (problems,
// names, versions) goes to a terminal through safeWriter.
func printServerStatus(w io.Writer, st *serve.Status) {
	w = safeWriter{w}
	ago := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.DateTime+" UTC"), t.Sub(st.Time).Abs().Round(time.Second))
	}
	at := func(t time.Time) string { return t.UTC().Format(time.DateTime + " UTC") }
	fmt.Fprintf(w, "%s: %s\n", st.Name, strings.ToUpper(st.Health.State))
	for _, p := range st.Health.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	fmt.Fprintf(w, "server    sumd %s, serving since %s\n", st.Version, ago(st.Started))
	fmt.Fprintf(w, "tree      %d records, root %s\n", st.Log.TreeSize, st.Log.RootHash)
	if st.Log.LastCommit != nil {
		fmt.Fprintf(w, "commit    last %s\n", ago(*st.Log.LastCommit))
	} else {
		fmt.Fprintf(w, "commit    none seen since the history began\n")
	}
	if days := st.Log.RecordsPerDay; len(days) > 0 {
		var parts []string
		for _, d := range days[max(len(days)-7, 0):] {
			parts = append(parts, fmt.Sprintf("%s %d", d.Day, d.Records))
		}
		fmt.Fprintf(w, "per day   %s\n", strings.Join(parts, ", "))
	}
	for _, k := range st.VerifierKeys {
		fmt.Fprintf(w, "vkey      %s\n", k)
	}
	if s := st.Sync; s != nil {
		fmt.Fprintf(w, "sync      every %s, %d registries", time.Duration(s.IntervalSeconds*float64(time.Second)), s.Registries)
		if p := s.LastPass; p != nil {
			var outcomes []string
			for _, o := range slices.Sorted(maps.Keys(p.Outcomes)) {
				outcomes = append(outcomes, fmt.Sprintf("%s %d", o, p.Outcomes[o]))
			}
			fmt.Fprintf(w, "; last pass %s, %.1fs: %s; %d unchanged, %d unreadable, %d conflicts, %d refused",
				at(p.Started), p.Seconds, strings.Join(outcomes, ", "), p.Unchanged, p.Failures, p.Conflicts, p.Refused)
			if p.BudgetSpent {
				fmt.Fprint(w, "; download budget spent: the next pass carries on from where it stopped")
			}
		}
		fmt.Fprintln(w)
	}
	for _, m := range st.Mirrors {
		checked := "never confirmed current"
		if m.Checked != nil {
			checked = "confirmed current " + ago(*m.Checked)
		}
		kind := "full"
		if m.Partial {
			kind = "partial"
		}
		fmt.Fprintf(w, "mirror    %s (%s): %d records, %d behind its origin, %s\n", m.Name, kind, m.TreeSize, m.Lag, checked)
	}
	if t := st.TUF; t != nil {
		for _, r := range t.Roles {
			fmt.Fprintf(w, "tuf       %-9s version %d, expires %s (%s)\n", r.Role, r.Version, at(r.Expires), serve.Until(r.Expires, st.Time))
		}
	}
	for _, c := range st.Counters {
		if c.Value == 0 {
			continue
		}
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
			labels = append(labels, k+"="+c.Labels[k])
		}
		fmt.Fprintf(w, "counter   %s{%s} %g\n", c.Name, strings.Join(labels, ","), c.Value)
	}
}
