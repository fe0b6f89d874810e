package oci

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxResponseSize caps the body of every registry response other than a
// blob: manifests, indexes, referrers, tag lists, catalog pages, tokens.
// go-containerregistry reads these whole (manifests up to 100 MiB, tag lists
// and catalogs without a limit); sumd's largest legitimate one is a .sig
// manifest of cosign's 1000 signatures at most. Blobs are read against the
// size their descriptor gives, under their own limits.
const MaxResponseSize = 4 << 20

// DefaultResponseHeaderTimeout bounds the wait for a registry's response
// headers once a request is sent, when Remote.Transport is nil.
const DefaultResponseHeaderTimeout = time.Minute

// MaxManifestItems caps the JSON items of a manifest or referrers response,
// counted as its commas and opening braces (inside strings too).
// go-containerregistry unmarshals every manifest it fetches whole, to read
// its artifactType, and an array element costs hundreds of bytes however
// short it is: a 4 MiB manifest of "layers":[0,0,0,… takes gigabytes.
// 50,000 bounds a parse to some 35 MB, and is more than a .sig manifest of
// cosign's 1000 signatures with their Rekor bundles holds.
const MaxManifestItems = 50_000

// errResponseTooLarge is a registry response over MaxResponseSize bytes,
// or over MaxManifestItems items.
type errResponseTooLarge struct {
	method, url string
	limit       int64
	unit        string // "bytes" or "JSON items"
}

func (e *errResponseTooLarge) Error() string {
	return fmt.Sprintf("registry response to %s %s is larger than the limit of %d %s", e.method, e.url, e.limit, e.unit)
}

// limitTransport caps the body of every response but a blob's at limit
// bytes, and that of a manifest or referrers response at items JSON items:
// reading past either fails with an *errResponseTooLarge.
type limitTransport struct {
	base         http.RoundTripper
	limit, items int64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	kind := requestKind(req)
	if kind == blobRequest {
		return resp, nil
	}
	u := *req.URL
	redactURL(&u) // no tokens or credentials in errors
	b := &limitedBody{rc: resp.Body, bytes: t.limit, items: -1}
	b.tooLarge = func(limit int64, unit string) error {
		return &errResponseTooLarge{req.Method, u.String(), limit, unit}
	}
	if kind == manifestRequest {
		b.items = t.items
	}
	resp.Body = b
	return resp, nil
}

type kind int

const (
	otherRequest    kind = iota
	blobRequest          // /v2/<name>/blobs/<digest>
	manifestRequest      // /v2/<name>/manifests/<ref>, /v2/<name>/referrers/<digest>
)

// requestKind says what req fetches, from its path or, for a redirect, from
// the path of the request redirected (registries send blobs from storage
// elsewhere). A repository name has no ":", a digest does; uploads
// (/blobs/uploads/...) are not blobs.
func requestKind(req *http.Request) kind {
	for req.Response != nil && req.Response.Request != nil {
		req = req.Response.Request
	}
	p, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		return otherRequest
	}
	switch {
	case isDigestAfter(p, "/blobs/"):
		return blobRequest
	case strings.Contains(p, "/manifests/") || isDigestAfter(p, "/referrers/"):
		return manifestRequest
	}
	return otherRequest
}

// isDigestAfter reports whether p ends in sep followed by a digest.
func isDigestAfter(p, sep string) bool {
	i := strings.LastIndex(p, sep)
	if i < 0 {
		return false
	}
	d := p[i+len(sep):]
	return strings.Contains(d, ":") && !strings.Contains(d, "/")
}

// limitedBody is a response body that fails past bytes bytes, or past
// items commas and opening braces if items is not negative.
type limitedBody struct {
	rc           io.ReadCloser
	bytes, items int64
	tooLarge     func(limit int64, unit string) error
	read, seen   int64
	err          error // the limit passed, for every later Read
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.bytes-b.read+1 {
		p = p[:b.bytes-b.read+1] // one byte more tells the limit from the end
	}
	n, err := b.rc.Read(p)
	b.read += int64(n)
	b.seen += int64(bytes.Count(p[:n], []byte{','}) + bytes.Count(p[:n], []byte{'{'}))
	switch {
	case b.items >= 0 && b.seen > b.items:
		b.err = b.tooLarge(b.items, "JSON items")
		return 0, b.err
	case b.read > b.bytes:
		b.err = b.tooLarge(b.bytes, "bytes")
		return n - 1, b.err
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// defaultTransports are Go's default transport with a response header
// timeout, one per timeout, shared so that connections are reused.
var defaultTransports sync.Map // time.Duration -> *http.Transport

func defaultTransport(headerTimeout time.Duration) http.RoundTripper {
	if t, ok := defaultTransports.Load(headerTimeout); ok {
		return t.(*http.Transport)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = headerTimeout
	t.IdleConnTimeout = 90 * time.Second
	v, _ := defaultTransports.LoadOrStore(headerTimeout, t)
	return v.(*http.Transport)
}
