package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Remote says how to reach registries. The zero value uses the Docker
// config file's credentials and Go's default transport with a response
// header timeout. Whatever the transport, every response body but a blob's
// is capped at MaxResponseSize, and a manifest's at MaxManifestItems.
type Remote struct {
	// Keychain resolves credentials; nil means authn.DefaultKeychain (the
	// Docker config file, $DOCKER_CONFIG/config.json, with its helpers).
	Keychain authn.Keychain
	// Transport carries the requests; nil means a clone of
	// http.DefaultTransport with ResponseHeaderTimeout.
	Transport http.RoundTripper
	// ResponseHeaderTimeout bounds the wait for a response's headers when
	// Transport is nil (default DefaultResponseHeaderTimeout): a registry
	// that accepts a connection and never answers fails the request.
	ResponseHeaderTimeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

func (r Remote) keychain() authn.Keychain {
	if r.Keychain == nil {
		return authn.DefaultKeychain
	}
	return r.Keychain
}

func (r Remote) transport() http.RoundTripper {
	base := r.Transport
	if base == nil {
		timeout := r.ResponseHeaderTimeout
		if timeout <= 0 {
			timeout = DefaultResponseHeaderTimeout
		}
		base = defaultTransport(timeout)
	}
	return &limitTransport{base: base, limit: MaxResponseSize, items: MaxManifestItems}
}

// options are the go-containerregistry options for requests made in ctx.
func (r Remote) options(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.keychain()),
		remote.WithTransport(r.transport()),
	}
	if r.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(r.UserAgent))
	}
	return opts
}

// A repoClient reads one repository. Tags, signatures and referrer lists
// go through go-containerregistry's remote package; manifests by digest and
// blobs through an authenticated transport of our own, so that their size
// and digest are checked here and a mismatch is told apart from a network
// failure.
type repoClient struct {
	repo      name.Repository
	opts      []remote.Option
	blobs     *http.Client
	manifests *http.Client // blobs' transport, retrying as remote does
	// budget, if not nil, counts the blob bytes of a sync pass.
	budget *passBudget
}

func newRepoClient(ctx context.Context, r Remote, repo name.Repository) (*repoClient, error) {
	auth, err := authn.Resolve(ctx, r.keychain(), repo)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve credentials for %s: %w", repo, err)
	}
	var base http.RoundTripper = r.transport()
	if r.UserAgent != "" {
		base = transport.NewUserAgent(base, r.UserAgent)
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		// The ping of /v2/ fails here: a host that is not a registry too.
		return nil, fmt.Errorf("failed to reach %s as an OCI registry (GET /v2/, then its token service if it names one): %w", repo.RegistryStr(), err)
	}
	// Manifests are small and read whole: retry a flaky registry as
	// remote.Get would, with transport's shorter default backoff.
	retry := transport.NewRetry(tr, transport.WithRetryStatusCodes(retryStatusCodes...))
	// go-containerregistry's calls (tags, HEAD, signatures, referrers)
	// share one Puller, so that they share one handshake with the
	// registry: each call given none pings /v2/ and asks the token
	// service anew, three requests for every HEAD of a pass.
	opts := r.options(ctx)
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	return &repoClient{
		repo: repo, opts: append(opts, remote.Reuse(p)),
		blobs:     &http.Client{Transport: tr, CheckRedirect: checkRedirect},
		manifests: &http.Client{Transport: retry, CheckRedirect: checkRedirect},
	}, nil
}

// checkRedirect follows a registry's redirects as http.Client does
// (registries serve blobs, even manifests, from storage elsewhere), but
// not to an IP address the registry has no business sending sumd to: a
// link-local one, such as the cloud metadata service (169.254.169.254),
// or a loopback or private one from a registry outside those networks. A
// hostile registry must not make sumd a client of the services on its
// host or network; a registry on a private network may send it to
// storage there. go-containerregistry refuses such redirects on its own
// requests (checkRedirectSSRF); these are sumd's. As there, a host name
// is not resolved to check it.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	from, to := via[0].URL.Hostname(), req.URL.Hostname()
	dest, ok := ipLiteral(to)
	if from == to || !ok {
		return nil
	}
	switch origin, _ := ipLiteral(from); {
	case dest.IsLinkLocalUnicast() || dest.IsLinkLocalMulticast() || dest.IsUnspecified():
		return fmt.Errorf("refusing a redirect to link-local address %s", to)
	case (dest.IsLoopback() || dest.IsPrivate()) && !(origin.IsLoopback() || origin.IsPrivate()):
		return fmt.Errorf("refusing a redirect from %s to private address %s", from, to)
	}
	return nil
}

// ipLiteral parses host as an IP address, IPv4-mapped IPv6 ones as the
// IPv4 address they are; it reports false for a host name.
func ipLiteral(host string) (netip.Addr, bool) {
	host, _, _ = strings.Cut(host, "%") // a zone does not change the address
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err == nil
}

// in returns c for requests made in ctx, such as one artifact's deadline.
func (c *repoClient) in(ctx context.Context) *repoClient {
	cc := *c
	cc.opts = append(slices.Clip(c.opts), remote.WithContext(ctx))
	return &cc
}

// errTampered is a blob whose bytes do not match the digest or size its
// manifest gives: the registry serves something other than what was signed.
type errTampered struct{ msg string }

func (e *errTampered) Error() string { return e.msg }

// errTooLarge is a blob over its size limit.
type errTooLarge struct {
	what  string
	limit int64
}

func (e *errTooLarge) Error() string {
	return fmt.Sprintf("%s is larger than the limit of %d bytes", e.what, e.limit)
}

// blob copies the blob of d to w, refusing one larger than limit, and
// checks that exactly d.Size bytes with digest d.Digest arrived; the bytes
// read count against c's budget. A mismatch
// is an *errTampered; w has then received bytes that must be discarded.
func (c *repoClient) blob(ctx context.Context, d v1.Descriptor, limit int64, w io.Writer, what string) error {
	if d.Size > limit {
		return &errTooLarge{what, limit}
	}
	u := url.URL{Scheme: c.repo.Scheme(), Host: c.repo.RegistryStr(), Path: "/v2/" + c.repo.RepositoryStr() + "/blobs/" + d.Digest.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("failed to build request: %w", err)
	}
	resp, err := c.blobs.Do(req)
	if err != nil {
		return fmt.Errorf("failed to fetch %s: %w", what, redactError(err))
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return fmt.Errorf("failed to fetch %s: %w", what, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, d.Size+1))
	c.budget.spend(n)
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", what, err)
	}
	return checkBlob(d, n, h, what)
}

func checkBlob(d v1.Descriptor, n int64, h hash.Hash, what string) error {
	switch {
	case n > d.Size:
		return &errTampered{fmt.Sprintf("%s %s: registry served more than the %d bytes the manifest says", what, d.Digest, d.Size)}
	case n < d.Size:
		return &errTampered{fmt.Sprintf("%s %s: registry served %d bytes, the manifest says %d", what, d.Digest, n, d.Size)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); d.Digest.Algorithm != "sha256" || got != d.Digest.Hex {
		return &errTampered{fmt.Sprintf("%s: registry served bytes of digest sha256:%s, the manifest says %s", what, got, d.Digest)}
	}
	return nil
}

// redactError removes from err, an http.Client's, what the URL it names
// may carry of credentials: registries redirect blobs and manifests to
// storage at pre-signed URLs (S3, GCS), whose query is a credential, and
// the client's *url.Error quotes the URL it failed on, redirect and all.
// go-containerregistry does the same on its own requests.
func redactError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		ue.URL = "(a URL that does not parse)"
		return err
	}
	redactURL(u)
	ue.URL = u.String() // the client made ue for this request alone
	return err
}

// redactURL blanks the parts of u that may carry credentials: user info,
// query and fragment.
func redactURL(u *url.URL) {
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
}

// retryStatusCodes are the responses remote retries (its defaults).
var retryStatusCodes = []int{
	http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// manifestAccept is the Accept header of a manifest request: the types
// go-containerregistry asks for, since some registries serve a manifest by
// digest only to a client that accepts its type.
var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
	string(types.OCIImageIndex), string(types.DockerManifestList),
}, ",")

// manifest returns the raw manifest of digest d, at most MaxManifestSize
// bytes. What is wrong with the manifest itself is told apart from a
// failure of the registry: the registry's 404 (isNotFound), bytes of
// another digest (*errTampered), more than the limit (*errTooLarge).
func (c *repoClient) manifest(ctx context.Context, d v1.Hash) ([]byte, error) {
	what := "manifest " + d.String()
	u := url.URL{Scheme: c.repo.Scheme(), Host: c.repo.RegistryStr(), Path: "/v2/" + c.repo.RepositoryStr() + "/manifests/" + d.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build request: %w", err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.manifests.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch %s: %w", what, redactError(err))
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, fmt.Errorf("failed to fetch %s: %w", what, err)
	}
	var buf bytes.Buffer
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(&buf, h), io.LimitReader(resp.Body, MaxManifestSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("failed to read %s: %w", what, err)
	case n > MaxManifestSize:
		return nil, &errTooLarge{what, MaxManifestSize}
	}
	if got := hex.EncodeToString(h.Sum(nil)); d.Algorithm != "sha256" || got != d.Hex {
		return nil, &errTampered{fmt.Sprintf("registry served bytes of digest sha256:%s for %s", got, what)}
	}
	return buf.Bytes(), nil
}

// DeniedHint says what to do when a registry refuses sumd (IsDenied): the
// credentials come from the Docker config file, and a service has no home
// to run docker login in.
const DeniedHint = "the registry refused sumd's credentials, or their absence (401 or 403): sumd reads them from the Docker config file, " +
	"$DOCKER_CONFIG/config.json or ~/.docker/config.json; under systemd or in a container, set DOCKER_CONFIG to a directory holding " +
	"a config.json with the registry's auths (docs/oci.md, Credentials and transport)"

// IsDenied reports whether err is a registry's 401 or 403, refusing the
// credentials sumd sent, or their absence.
func IsDenied(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden)
}

// isNotFound reports whether err is a registry's 404.
func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
