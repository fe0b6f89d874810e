package oci

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A Source is one place module artifacts are synced from: a registry and a
// repository prefix (-registry HOST[:PORT][/PREFIX]). The repositories of a
// module live at <prefix>/<RepositoryName>; which ones exist is read from
// the registry's catalog unless Repositories names them.
type Source struct {
	Registry name.Registry
	Prefix   string // repository prefix without slashes at either end; "" for none
	// Repositories are the repositories to read, prefix included, without
	// the host. If empty, the registry's /v2/_catalog is listed and every
	// repository under Prefix is read.
	Repositories []string
}

// String is the source as configured: HOST[:PORT][/PREFIX].
func (s *Source) String() string {
	if s.Prefix == "" {
		return s.Registry.Name()
	}
	return s.Registry.Name() + "/" + s.Prefix
}

// ParseSources parses -registry values (HOST[:PORT][/PREFIX]) and assigns
// each -repository value (HOST[:PORT]/REPOSITORY) to the source whose
// prefix it is under, the longest such prefix if several are.
func ParseSources(registries, repositories []string) ([]*Source, error) {
	var sources []*Source
	for _, r := range registries {
		s, err := parseSource(r)
		if err != nil {
			return nil, err
		}
		sources = append(sources, s)
	}
	for _, r := range repositories {
		if err := assignRepository(sources, r); err != nil {
			return nil, err
		}
	}
	return sources, nil
}

func parseSource(s string) (*Source, error) {
	host, prefix, _ := strings.Cut(s, "/")
	if host == "" || strings.Contains(s, "://") {
		return nil, fmt.Errorf("invalid registry %q: want HOST[:PORT][/PREFIX], such as registry.example.com/gomod", s)
	}
	reg, err := name.NewRegistry(host, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("invalid registry %q: %w", s, err)
	}
	if err := checkRepoPath(prefix); prefix != "" && err != nil {
		return nil, fmt.Errorf("invalid registry %q: prefix %w", s, err)
	}
	return &Source{Registry: reg, Prefix: prefix}, nil
}

// checkRepoPath reports whether p is a valid repository path: components
// of lower-case letters, digits and OCI separators, joined by "/".
func checkRepoPath(p string) error {
	for c := range strings.SplitSeq(p, "/") {
		if !ociComponent.MatchString(c) {
			return fmt.Errorf("%q is not a valid repository path: component %q must be lower-case letters and digits separated by ., _, __ or dashes", p, c)
		}
	}
	return nil
}

func assignRepository(sources []*Source, ref string) error {
	host, repo, _ := strings.Cut(ref, "/")
	reg, err := name.NewRegistry(host, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("invalid repository %q: %w", ref, err)
	}
	var best *Source
	for _, s := range sources {
		if s.Registry.Name() != reg.Name() {
			continue
		}
		if s.Prefix != "" && !strings.HasPrefix(repo, s.Prefix+"/") {
			continue
		}
		if best == nil || len(s.Prefix) > len(best.Prefix) {
			best = s
		}
	}
	switch {
	case best == nil:
		return fmt.Errorf("repository %q is not under any -registry HOST[:PORT]/PREFIX: add its registry and prefix with -registry", ref)
	case repo == best.Prefix || repo == "":
		return fmt.Errorf("repository %q names the prefix itself, not a module's repository under it", ref)
	}
	if err := checkRepoPath(repo); err != nil {
		return fmt.Errorf("invalid repository %q: %w", ref, err)
	}
	if !slices.Contains(best.Repositories, repo) {
		best.Repositories = append(best.Repositories, repo)
	}
	return nil
}

// repositories returns the repositories to read: the configured ones, or
// those the catalog lists under the prefix, sorted.
func (s *Source) repositories(ctx context.Context, opts []remote.Option) ([]string, error) {
	if len(s.Repositories) > 0 {
		return s.Repositories, nil
	}
	under := func(r string) bool { return s.Prefix == "" || strings.HasPrefix(r, s.Prefix+"/") }
	repos, err := listCatalog(ctx, s.Registry, opts, under)
	switch {
	case err != nil && cannotReach(err):
		// Naming the repositories would not help: say what failed.
		return nil, fmt.Errorf("failed to reach %s to list its catalog: %w", s.Registry.Name(), err)
	case err != nil:
		return nil, fmt.Errorf("failed to list the repositories of %s through its catalog (for a registry without /v2/_catalog, name them with -repository): %w", s.Registry.Name(), err)
	}
	slices.Sort(repos)
	return repos, nil
}

// covers reports whether repo ("host/repository", as name.Repository
// prints it) is on s's registry and under its prefix: one s may list.
func (s *Source) covers(repo string) bool {
	under := s.Registry.Name() + "/"
	if s.Prefix != "" {
		under += s.Prefix + "/"
	}
	return strings.HasPrefix(repo, under)
}
