package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/tlog"
)

// A result is what became of one artifact.
type result struct {
	outcome Outcome
	err     error          // why, for every outcome but Recorded and Present
	module  module.Version // once the manifest is parsed
	format  string         // signature format that verified: "cosign" or "bundle"
	key     string         // file of the key that verified it
	id      int64          // record id, for Recorded and Present
	// mod and zip are the manifest's layers, once parsed.
	mod, zip v1.Descriptor
	// judged means a Retagged, or a signed Invalid or Conflict, judged by
	// the content the manifest names (or remembered so by the sync
	// state): a verdict on that manifest for the sync state to keep,
	// unlike a transient failure to read it or a layer over a limit.
	judged bool
	// rec is the record hashed from the layers of a judged Conflict.
	rec gosum.Record
	// sameLayers means a Present judged without fetching the layers: the
	// manifest names those of the manifest the version was recorded from.
	sameLayers bool
}

func (r *result) verb() string {
	switch {
	case r.outcome == Present && r.sameLayers:
		return "already recorded: the layers it was recorded from, in another manifest no configured key signed (pushed again; the layers were not fetched)"
	case r.outcome == Present && r.format == "":
		return "already recorded with the same hashes, signed by no configured key (a removed key's release)"
	case r.outcome == Present:
		return "already recorded with the same hashes"
	}
	return "recorded"
}

// examine takes one artifact through the steps whose order is the security
// argument (see the package doc): manifest by digest, format and placement,
// signature over that digest, then the layers that manifest names. prev is
// what the sync state remembered of the tag, if anything.
func (s *Syncer) examine(ctx context.Context, c *repoClient, src *Source, tag string, desc *v1.Descriptor, prev stateEntry) *result {
	if desc.MediaType != types.OCIManifestSchema1 {
		return &result{outcome: Ignored, err: fmt.Errorf("%s is a %s, not an OCI image manifest", desc.Digest, desc.MediaType)}
	}
	if desc.Size > MaxManifestSize {
		return &result{outcome: Malformed, err: fmt.Errorf("manifest is %d bytes, more than the limit of %d", desc.Size, MaxManifestSize)}
	}
	raw, err := c.manifest(ctx, desc.Digest)
	if err != nil {
		return &result{outcome: Failed, err: err}
	}
	a, err := ParseManifest(raw)
	switch {
	case errors.Is(err, ErrNotModule):
		return &result{outcome: Ignored, err: err}
	case err != nil:
		return &result{outcome: Malformed, err: err}
	}
	res := &result{module: a.Module, mod: a.Mod, zip: a.Zip}
	if err := checkPlacement(a, src.Prefix, c.repo.RepositoryStr(), tag); err != nil {
		res.outcome, res.err = Malformed, err
		return res
	}
	keys := keysFor(s.opts.Keys, c.repo)
	if res.format, res.key, err = verifySignatures(ctx, c, keys, desc.Digest); err != nil {
		if n := len(s.opts.Keys) - len(keys); n > 0 && errors.Is(err, errBadSignature) {
			err = fmt.Errorf("%w (%d configured key(s) not tried: bound to other repositories)", err, n)
		}
		res.outcome, res.err = signatureOutcome(err), err
		if res.outcome != Unsigned && res.outcome != BadSignature {
			return res
		}
		id, ok := s.holds(ctx, a.Module)
		switch {
		case !ok:
			// A version awaiting its signature.
		case prev.Module != a.Module.String():
			s.matchRecorded(ctx, c, a, res)
		case prev.Retagged == desc.Digest.String():
			// An earlier pass fetched this manifest's layers and found
			// other content than the record's. The log's record never
			// changes, nor do the bytes a digest names: fetching them
			// again (a zip of up to MaxZipSize) on every pass, for
			// content nobody signed, would let whoever may push make
			// every pass download that much.
			res.outcome, res.judged = Retagged, true
			res.err = fmt.Errorf("%w: %w; an earlier pass found its layers are not the recorded content (not fetched again)", ErrRetagged, err)
		case prev.sameLayers(a):
			// The recorded bytes, in another manifest (a release pushed
			// again, by a CI job run again, with another annotation):
			// nothing to fetch, and nothing re-tagged.
			res.outcome, res.id, res.err, res.sameLayers = Present, id, nil, true
		default:
			s.matchRecorded(ctx, c, a, res)
		}
		return res
	}
	if s.remembered(ctx, a, desc.Digest.String(), prev, res) {
		return res
	}
	rec, err := s.hash(ctx, c, a)
	if err != nil {
		var invalid *errInvalid
		res.outcome, res.err, res.judged = hashOutcome(err), err, errors.As(err, &invalid)
		return res
	}
	res.outcome, res.id, res.err = s.add(ctx, rec)
	if res.outcome == Conflict {
		res.judged, res.rec = true, rec
	}
	return res
}

// remembered judges a signed artifact by the verdict an earlier pass
// reached on its manifest, digest, if the sync state kept one (prev) and
// what the verdict rests on still holds, and reports whether it did so;
// its layers are not fetched. The manifest names its layers' bytes and its
// signature verified with the keys configured now (examine), so an
// invalid module is invalid still, unless a layer is now over a limit
// lowered since (hash judges that from the manifest, fetching nothing);
// and the hashes an earlier pass found a conflict are its content's still,
// so it is compared with the log again: a record never changes, but the
// state never stands for the log, and a log that no longer holds the
// version, or holds those hashes, has the artifact fetched and recorded.
// Without this whoever holds a configured key could make every pass
// download a zip of up to MaxZipSize.
func (s *Syncer) remembered(ctx context.Context, a *Artifact, digest string, prev stateEntry, res *result) bool {
	switch {
	case prev.Invalid == digest:
		if s.checkSizes(a) != nil {
			return false
		}
		res.outcome, res.judged = Invalid, true
		res.err = &errInvalid{errors.New("an earlier pass found its layers fail the go command's checks (not fetched again)")}
		return true
	case prev.Conflict.Digest == digest:
		rec := gosum.Record{Path: a.Module.Path, Version: a.Module.Version, Hash: prev.Conflict.Hash, GoMod: prev.Conflict.GoMod}
		_, conflicts, err := s.opts.Log.Check(ctx, []gosum.Record{rec})
		if err != nil || conflicts == nil || conflicts[0] == nil {
			return false // judged afresh: hash and add say what fails
		}
		res.outcome, res.judged, res.rec = Conflict, true, rec
		res.err = fmt.Errorf("%w (hashed by an earlier pass; not fetched again)", conflicts[0])
		return true
	}
	return false
}

// checkSizes checks a's layers against MaxZipSize and MaxModSize by their
// descriptors, before any byte is fetched.
func (s *Syncer) checkSizes(a *Artifact) error {
	switch {
	case a.Zip.Size > s.opts.MaxZipSize:
		return &errTooLarge{"zip layer", s.opts.MaxZipSize}
	case a.Mod.Size > s.opts.MaxModSize:
		return &errTooLarge{"go.mod layer", s.opts.MaxModSize}
	}
	return nil
}

// holds reports whether the log holds m, and its record's id, for an
// artifact of m that no configured key signed: then it is not a release
// awaiting its signature but the recorded release or a re-tag of it
// (ErrRetagged). A lookup that fails leaves the artifact's own outcome,
// with a warning. It is asked of the log, never the sync state: what the
// state remembers of a version the log lacks must not make it pass for
// recorded.
func (s *Syncer) holds(ctx context.Context, m module.Version) (int64, bool) {
	id, err := s.opts.Log.Lookup(ctx, m)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.WarnContext(ctx, "OCI sync: failed to look up the version of an artifact no configured key signed; it may be a re-tag of a recorded version", "module", m.String(), "err", err)
	}
	return id, err == nil
}

// matchRecorded judges an artifact of a version the log holds that no
// configured key signed (res is its unsigned or bad_signature result),
// which the sync state cannot judge (see examine), by its content, hashed
// as a signed artifact's is: the same hashes as the
// log's record are the recorded release, whose key was since removed from
// the configuration (a rotation) while the sync state that remembered it
// was lost or dropped, so it is Present and remembered like any recorded
// version; other hashes, or content that is not a valid module, are a
// re-tag (Retagged): a verdict on the manifest (judged), which the sync
// state keeps, unless the registry served a layer with other bytes than
// its digest (tampered), the registry's fault, or a layer is over
// MaxZipSize or MaxModSize, a verdict on the limit, which the operator may
// raise: those are judged afresh next pass. A
// registry or log read that fails is Failed, and a version the published
// tree does not hold yet keeps res's own outcome. Nothing is ever recorded
// from here: the content is not signed.
func (s *Syncer) matchRecorded(ctx context.Context, c *repoClient, a *Artifact, res *result) {
	sigErr := res.err
	rec, err := s.hash(ctx, c, a)
	if err != nil {
		if hashOutcome(err) == Failed {
			res.outcome, res.err = Failed, fmt.Errorf("%w; its content could not be read to compare with the recorded version: %w", sigErr, err)
			return
		}
		// Neither tampered bytes (the registry's fault) nor a layer over
		// MaxZipSize or MaxModSize (the operator may raise the limit)
		// is a verdict on the manifest for the sync state to keep: both
		// are judged afresh, a layer too large from the manifest alone
		// (hash fetches nothing then).
		var tooLarge *errTooLarge
		res.outcome, res.judged = Retagged, hashOutcome(err) != Tampered && !errors.As(err, &tooLarge)
		res.err = fmt.Errorf("%w: %w; and its content does not hash as a module: %w", ErrRetagged, sigErr, err)
		return
	}
	ids, conflicts, err := s.opts.Log.Check(ctx, []gosum.Record{rec})
	switch {
	case err != nil:
		res.outcome, res.err = Failed, fmt.Errorf("%w; failed to compare its content with the recorded version: %w", sigErr, err)
	case conflicts != nil && conflicts[0] != nil:
		res.outcome, res.judged = Retagged, true
		res.err = fmt.Errorf("%w: %w: %w", ErrRetagged, sigErr, conflicts[0])
	case ids[0] >= 0:
		res.outcome, res.id, res.err = Present, ids[0], nil
	}
}

func signatureOutcome(err error) Outcome {
	switch {
	case errors.Is(err, errUnsigned):
		return Unsigned
	case errors.Is(err, errBadSignature):
		return BadSignature
	}
	return Failed
}

// errInvalid is a module that fails the go command's checks.
type errInvalid struct{ err error }

func (e *errInvalid) Error() string { return "invalid module: " + e.err.Error() }
func (e *errInvalid) Unwrap() error { return e.err }

func hashOutcome(err error) Outcome {
	var tampered *errTampered
	var tooLarge *errTooLarge
	var invalid *errInvalid
	switch {
	case errors.As(err, &tampered):
		return Tampered
	case errors.As(err, &tooLarge), errors.As(err, &invalid):
		return Invalid
	}
	return Failed
}

// hash fetches the go.mod and zip layers, checking each blob's size and
// digest, and hashes the module as a proxy fetch would: modhash.HashZip
// with the go.mod layer as the go.mod, so the record is what the go
// command computes from the same two files served by a module proxy. A
// module the go command would refuse is an *errInvalid; a file-system
// failure while hashing is not (modhash.IsFileError); layers the pass's
// download budget cannot cover are errBudgetSpent, before any is fetched.
func (s *Syncer) hash(ctx context.Context, c *repoClient, a *Artifact) (gosum.Record, error) {
	// Both sizes before either fetch: a zip layer over the limit, judged
	// afresh on every pass (matchRecorded), must cost no go.mod download.
	if err := s.checkSizes(a); err != nil {
		return gosum.Record{}, err
	}
	if !c.budget.grant(a.Mod.Size + a.Zip.Size) {
		return gosum.Record{}, errBudgetSpent
	}
	var mod bytes.Buffer
	if err := c.blob(ctx, a.Mod, s.opts.MaxModSize, &mod, "go.mod layer"); err != nil {
		return gosum.Record{}, err
	}
	zipPath, err := s.downloadZip(ctx, c, a.Zip)
	if err != nil {
		return gosum.Record{}, err
	}
	defer os.Remove(zipPath)
	// Never nil: nil would make HashZip fall back to the zip's go.mod, and
	// an empty go.mod layer must be judged as the go command judges it.
	goMod := append([]byte{}, mod.Bytes()...)
	sums, err := modhash.HashZip(a.Module, zipPath, goMod)
	if err != nil && modhash.IsFileError(err) {
		// The scratch file could not be read back (removed, a disk
		// error): sumd failed, which says nothing of the module.
		return gosum.Record{}, fmt.Errorf("failed to read back the zip layer from its temporary file: %w", err)
	}
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // drop "failed to hash M@V": the log line names it
		}
		// Capped, chain and all: CheckZip names every bad entry, and the
		// log line would carry megabytes of them.
		return gosum.Record{}, &errInvalid{errors.New(modhash.Reason(err, zipPath, "zip layer", modhash.MaxCauseText))}
	}
	return gosum.Record{Path: a.Module.Path, Version: a.Module.Version, Hash: sums.Hash, GoMod: sums.GoMod}, nil
}

// downloadZip streams the zip layer to a temporary file, so memory stays
// bounded whatever its size, and returns the file's name. The caller
// removes it.
func (s *Syncer) downloadZip(ctx context.Context, c *repoClient, d v1.Descriptor) (string, error) {
	tmp, err := scratch.Create(s.opts.TempDir, scratch.OCI)
	if err != nil {
		return "", fmt.Errorf("failed to create temporary file: %w", err)
	}
	err = c.blob(ctx, d, s.opts.MaxZipSize, tmp, "zip layer")
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("failed to write temporary file: %w", cerr)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// add records rec, telling a new record from one already there.
func (s *Syncer) add(ctx context.Context, rec gosum.Record) (Outcome, int64, error) {
	m := module.Version{Path: rec.Path, Version: rec.Version}
	_, lookupErr := s.opts.Log.Lookup(ctx, m)
	ids, err := s.opts.Log.Add(ctx, rec)
	var conflict *tlog.ConflictError
	switch {
	case errors.As(err, &conflict):
		return Conflict, 0, err
	case errors.Is(err, ErrRefused):
		return Refused, 0, err
	case err != nil:
		return Failed, 0, fmt.Errorf("failed to record %s: %w", rec.Key(), err)
	case lookupErr == nil:
		return Present, ids[0], nil
	case !errors.Is(lookupErr, fs.ErrNotExist):
		s.log.WarnContext(ctx, "OCI sync: lookup before recording failed", "module", rec.Key(), "err", lookupErr)
	}
	return Recorded, ids[0], nil
}

// splitModule splits "path@version".
func splitModule(mv string) (path, version string, ok bool) {
	i := strings.LastIndex(mv, "@")
	if i < 0 {
		return "", "", false
	}
	return mv[:i], mv[i+1:], true
}
