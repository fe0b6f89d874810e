package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
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

// A repoClient reads one repository. Tags and manifests go through
// go-containerregistry's remote package; blobs through an authenticated
// transport of our own, so that their size and digest are checked here and
// a mismatch is told apart from a network failure.
type repoClient struct {
	repo  name.Repository
	opts  []remote.Option
	blobs *http.Client
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
		return nil, fmt.Errorf("failed to authenticate to %s: %w", repo.RegistryStr(), err)
	}
	return &repoClient{repo: repo, opts: r.options(ctx), blobs: &http.Client{Transport: tr}}, nil
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
// checks that exactly d.Size bytes with digest d.Digest arrived. A mismatch
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
		return fmt.Errorf("failed to fetch %s: %w", what, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return fmt.Errorf("failed to fetch %s: %w", what, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, d.Size+1))
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

// manifest returns the raw manifest of digest d, read by digest so that
// go-containerregistry checks the bytes against it.
func (c *repoClient) manifest(d v1.Hash) ([]byte, error) {
	desc, err := remote.Get(c.repo.Digest(d.String()), c.opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch manifest %s: %w", d, err)
	}
	if len(desc.Manifest) > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s is %d bytes, more than the limit of %d", d, len(desc.Manifest), MaxManifestSize)
	}
	return desc.Manifest, nil
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
