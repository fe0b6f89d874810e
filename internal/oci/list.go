package oci

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Limits on listings. go-containerregistry's remote.List and remote.Catalog
// follow a registry's Link: rel="next" pages for as long as it sends them
// and keep every entry: an endless listing would take all memory and the
// pass for ever. sumd pages them itself, each page under MaxResponseSize,
// and fails the repository (or the source) over these limits.
const (
	MaxTags         = 100_000 // tags of one repository, version tags or not
	MaxRepositories = 100_000 // repositories in one registry's catalog
	maxListPages    = 10_000  // pages of one listing, empty ones included
	maxListBytes    = 64 << 20
	maxTagLen       = 128 // the OCI distribution spec's limit
)

// DefaultListTimeout bounds listing one registry's catalog, or reaching one
// repository and listing its tags.
const DefaultListTimeout = 5 * time.Minute

// listTags returns the version tags of c.repo (VersionOfTag), in the
// registry's order.
func listTags(ctx context.Context, c *repoClient) ([]string, error) {
	p, err := remote.NewPuller(c.opts...)
	if err != nil {
		return nil, err
	}
	l, err := p.Lister(ctx, c.repo)
	if err != nil {
		return nil, err
	}
	next := func() ([]string, error) {
		page, err := l.Next(ctx)
		if err != nil {
			return nil, err
		}
		return page.Tags, nil
	}
	isVersion := func(tag string) bool {
		_, ok := VersionOfTag(tag)
		return ok && len(tag) <= maxTagLen
	}
	return listPages(fmt.Sprintf("the tag list of %s", c.repo), "tags", MaxTags, l.HasNext, next, isVersion)
}

// listCatalog returns the repositories of reg's catalog that keep accepts.
func listCatalog(ctx context.Context, reg name.Registry, opts []remote.Option, keep func(string) bool) ([]string, error) {
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	l, err := p.Catalogger(ctx, reg)
	if err != nil {
		return nil, err
	}
	next := func() ([]string, error) {
		page, err := l.Next(ctx)
		if err != nil {
			return nil, err
		}
		return page.Repos, nil
	}
	return listPages("the catalog", "repositories", MaxRepositories, l.HasNext, next, keep)
}

// listPages reads the pages of a listing (what, of entries called unit)
// while more says there is one, and returns the entries keep accepts. It
// fails once the listing passes max entries, maxListPages pages or
// maxListBytes bytes of entries, keeping none of it.
func listPages(what, unit string, max int, more func() bool, next func() ([]string, error), keep func(string) bool) ([]string, error) {
	var kept []string
	n, size := 0, 0
	for pages := 0; more(); pages++ {
		if pages == maxListPages {
			return nil, fmt.Errorf("%s has more than %d pages (%d %s so far): refusing it", what, maxListPages, n, unit)
		}
		entries, err := next()
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			n, size = n+1, size+len(e)
			switch {
			case n > max:
				return nil, fmt.Errorf("%s has more than %d %s: refusing it", what, max, unit)
			case size > maxListBytes:
				return nil, fmt.Errorf("%s has more than %d bytes of %s: refusing it", what, maxListBytes, unit)
			}
			if keep(e) {
				kept = append(kept, e)
			}
		}
	}
	return kept, nil
}
