package oci

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ParseKey loads a -cosign-key value: FILE, a key whose signatures count
// for every source, or HOST[:PORT][/PATH]=FILE, one whose signatures count
// only for the repositories of that registry at PATH or under PATH/ (every
// repository of the registry without a PATH). Unbound, a key trusted for
// one team's repositories verifies artifacts in any other's, so that
// whoever holds it can publish versions of modules that are not the
// team's; since an artifact counts only at the repository its module path
// names, binding the key to repositories binds it to module paths.
func ParseKey(spec string) (*PublicKey, error) {
	scope, file, bound := strings.Cut(spec, "=")
	if !bound {
		return LoadPublicKey(spec)
	}
	reg, path, err := parseScope(scope)
	if err != nil || file == "" {
		return nil, fmt.Errorf("invalid cosign key %q: want FILE or HOST[:PORT][/PATH]=FILE, such as registry.example.com/gomod/example.com/team=team.pub%s", spec, because(err))
	}
	k, err := LoadPublicKey(file)
	if err != nil {
		return nil, err
	}
	k.Scope, k.registry, k.path = scope, reg.Name(), path
	return k, nil
}

func because(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// parseScope parses HOST[:PORT][/PATH], PATH a repository path.
func parseScope(scope string) (name.Registry, string, error) {
	host, path, _ := strings.Cut(scope, "/")
	if host == "" || strings.Contains(scope, "://") {
		return name.Registry{}, "", errors.New("the scope is not HOST[:PORT][/PATH]")
	}
	reg, err := name.NewRegistry(host, name.StrictValidation)
	if err != nil {
		return name.Registry{}, "", err
	}
	if path != "" || strings.HasSuffix(scope, "/") {
		if err := checkRepoPath(path); err != nil {
			return name.Registry{}, "", fmt.Errorf("scope path %w", err)
		}
	}
	return reg, path, nil
}

// covers reports whether k's signatures count for artifacts in repo.
func (k *PublicKey) covers(repo name.Repository) bool {
	if k.Scope == "" {
		return true
	}
	return repo.Registry.Name() == k.registry && under(repo.RepositoryStr(), k.path)
}

// under reports whether repository path p is at or under prefix ("" is
// the whole registry), on component boundaries.
func under(p, prefix string) bool {
	return prefix == "" || p == prefix || strings.HasPrefix(p, prefix+"/")
}

// keysFor returns the keys whose signatures count for repo.
func keysFor(keys []*PublicKey, repo name.Repository) []*PublicKey {
	var out []*PublicKey
	for _, k := range keys {
		if k.covers(repo) {
			out = append(out, k)
		}
	}
	return out
}

// CheckKeyScopes refuses a key bound where no source reads: it would
// verify nothing, and the artifacts its team signs would all be
// bad_signature for a mistake in the configuration.
func CheckKeyScopes(sources []*Source, keys []*PublicKey) error {
	var errs []error
	for _, k := range keys {
		if k.Scope != "" && !scopeRead(sources, k) {
			errs = append(errs, fmt.Errorf("cosign key %s is bound to %s, where no -registry source reads: bind it to a registry and path at or under one of them", k.File, k.Scope))
		}
	}
	return errors.Join(errs...)
}

// scopeRead reports whether some source reads repositories k covers: its
// prefix is under k's path, or k's path under its prefix.
func scopeRead(sources []*Source, k *PublicKey) bool {
	for _, s := range sources {
		if s.Registry.Name() == k.registry && (under(s.Prefix, k.path) || under(k.path, s.Prefix)) {
			return true
		}
	}
	return false
}

// warnUnbound warns of unbound keys beside bound ones: each unbound key
// verifies every source, so it undoes the binding of the others for
// whoever holds it. Most likely a list meant to be bound whole, written
// HOST/PATH=a.pub,b.pub where each value is bound on its own.
func warnUnbound(keys []*PublicKey, log *slog.Logger) {
	var bound bool
	var unbound []string
	for _, k := range keys {
		if k.Scope != "" {
			bound = true
		} else {
			unbound = append(unbound, k.File)
		}
	}
	if bound && len(unbound) > 0 {
		log.Warn("OCI sync: cosign keys beside bound ones are not bound, and verify the artifacts of every source: bind each (HOST[/PATH]=FILE) unless it is meant to",
			"unbound", strings.Join(unbound, ","))
	}
}
