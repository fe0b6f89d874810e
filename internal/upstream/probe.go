package upstream

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// CheckTrees returns an error naming the first file:// source among
// sources whose root is missing or not a directory: sumd serve checks
// them at start, as it checks its other files, because every lookup
// through such a tree would fail with 502 and the start is where a typo
// is best told. A tree on a mount that is not mounted yet passes (its
// mount point is an empty directory); one on a volume lost later is
// the lookup's 502 (errNoTree), not a refusal to start again.
func CheckTrees(sources []Source) error {
	for _, src := range sources {
		if !src.isFile() {
			continue
		}
		if err := checkTree(src.URL); err != nil {
			return fmt.Errorf("upstream proxy %s: %w", src.URL, err)
		}
	}
	return nil
}

// probeName is the checksum database whose support Probe asks about:
// GET <proxy>/sumdb/<name>/supported is the one request of the GOPROXY
// protocol that every proxy answers, 200 or 404/410, without fetching
// anything from anywhere.
const probeName = "sum.golang.org"

// Probe asks each http(s) source once whether it serves probeName, and
// only logs what the answer says of the configuration: a URL that is no
// GOPROXY base URL (a path prefix left out, the proxy's web UI) answers
// every lookup 404 or 410, as a proxy lacking the version does, and
// nothing else would tell the operator. Such URLs mostly answer with an
// HTML page, which no proxy's own answer is. A source that does not
// answer is warned of too; none of it stops anything: sumd serves what
// it recorded whatever upstream does, so its start must not wait for
// upstream. sumd serve runs it in the background at start.
func (f *Fetcher) Probe(ctx context.Context) {
	for _, src := range f.sources {
		if !src.isFile() && ctx.Err() == nil {
			f.probe(ctx, src)
		}
	}
}

// probe is Probe for src.
func (f *Fetcher) probe(ctx context.Context, src Source) {
	u := src.URL + "/sumdb/" + probeName + "/supported"
	status, html, err := f.probeGet(ctx, u, src.Auth)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		f.log.WarnContext(ctx, "upstream proxy did not answer sumd's probe at start: first lookups of versions not recorded yet fail with 502 until it does",
			"source", src.URL, "err", err)
	case html:
		f.log.WarnContext(ctx, "upstream proxy answered sumd's probe at start with an HTML page: is the URL a GOPROXY base URL (the one GOPROXY would name, with its path prefix, not the proxy's web UI)? If not, every lookup through it answers 410 as for a version it lacks",
			"source", src.URL, "probe", u, "status", status)
	case status != http.StatusOK && status != http.StatusNotFound && status != http.StatusGone:
		f.log.WarnContext(ctx, "upstream proxy answered sumd's probe at start with an unexpected status: check -upstream and -upstream-auth",
			"source", src.URL, "probe", u, "status", status)
	}
}

// probeGet sends GET u with auth within the fetch timeout, and returns the
// answer's status and whether it is an HTML page: so labelled, or, without
// a Content-Type, sniffed as one.
func (f *Fetcher) probeGet(ctx context.Context, u string, auth Auth) (status int, html bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false, fmt.Errorf("failed to build request: %w", err)
	}
	if err := auth.apply(req); err != nil {
		return 0, false, err
	}
	resp, err := f.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		ct = http.DetectContentType(head)
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return resp.StatusCode, mt == "text/html" || mt == "application/xhtml+xml", nil
}
