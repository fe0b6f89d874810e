// Package modhash computes the two go.sum hashes of a module version from its
// content, exactly as the go command does, and validates that content first
// the way the go command validates a download before it extracts it.
//
// The hashes are those of go.sum and of the checksum database records:
//
//	<path> <version> h1:<hash of the module zip>
//	<path> <version>/go.mod h1:<hash of the go.mod file>
package modhash

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/sumd-project/sumd/internal/regfile"
)

// Limits like the go command's.
const (
	MaxZipFile = modzip.MaxZipFile // bytes, module zip (500 MiB)
	MaxGoMod   = modzip.MaxGoMod   // bytes, go.mod (16 MiB)
)

// Sums are the two hashes recorded for one module version: Hash is the "h1:"
// hash of the module zip (the go.sum line "path version h1:..."), GoMod the
// "h1:" hash of its go.mod (the line "path version/go.mod h1:...").
type Sums struct{ Hash, GoMod string }

// HashZip validates the module zip file at zipPath for module m and returns
// its sums.
//
// Validation is module.Check on the path and version, a canonical version,
// at most MaxFiles entries (which the go command does not limit), and
// zip.CheckZip: every file under "path@version/", no unclean or
// traversing names, no duplicates or case-fold collisions, size limits.
//
// goMod is the go.mod content to hash. If nil, the zip's own go.mod is used,
// or, when the zip has none, the go.mod the go command synthesizes (see
// SynthesizedGoMod). If goMod is non-nil, it must be the one of these the
// go command uses, +incompatible or not: if the zip has a go.mod, the two
// must be byte-identical (the go command fetching from the origin takes
// the zip's go.mod, and makes one up only for a zip without:
// cmd/go/internal/modfetch.codeRepo.GoMod); if the zip has none, goMod
// must be the synthesized one. The go command would take any other
// recorded hash for a security error.
//
// The zip hash covers the zip's entries as they are, directory entries
// included, as the go command's does: re-zipping the same files can change
// it. zipPath is opened once, and every byte HashZip reads is the opened
// file's; it must not be written to while HashZip runs.
func HashZip(m module.Version, zipPath string, goMod []byte) (Sums, error) {
	return HashZipContext(context.Background(), m, zipPath, goMod)
}

// HashZipContext is HashZip that stops once ctx is done, returning an
// error that wraps ctx.Err(): a hash of a large zip takes seconds, which
// a caller nobody waits for any more (a first lookup whose clients hung
// up) must not spend holding its fetch slot. A zip of up to 1 MiB, hashed
// in milliseconds, is hashed to its verdict all the same (only a wait for
// the MaxFilesInFlight budget stops): a version whose bytes came as its
// last client left is judged, and its failure remembered, as any other.
func HashZipContext(ctx context.Context, m module.Version, zipPath string, goMod []byte) (Sums, error) {
	s, err := hashZip(ctx, m, zipPath, goMod)
	return hashed(m, s, err)
}

// hashed is what the HashZip functions return of the hash of m: s, or
// err wrapped.
func hashed(m module.Version, s Sums, err error) (Sums, error) {
	if err != nil {
		return Sums{}, fmt.Errorf("failed to hash %s: %w", m, err)
	}
	return s, nil
}

// stopped is err, the failure of a hash of a zip of size bytes, or ctx's
// error if ctx is done and the zip was read through a ctxReaderAt: the
// error a cancelled read became on its way up, whatever a library made
// of it, must not pass for a verdict on the module.
func stopped(ctx context.Context, size int64, err error) error {
	if err != nil && size > wholeZip && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// HashZipFile is HashZip of the zip open as f, which it reads from no
// other file: a caller that checks after it returns that f was not
// written to meanwhile (f.Changed) knows that the sums are of one file,
// whatever happened to its name.
func HashZipFile(m module.Version, f *regfile.File, goMod []byte) (Sums, error) {
	return HashZipFileContext(context.Background(), m, f, goMod)
}

// HashZipFileContext is HashZipFile that stops once ctx is done, as
// HashZipContext does.
func HashZipFileContext(ctx context.Context, m module.Version, f *regfile.File, goMod []byte) (Sums, error) {
	err := checkVersion(m)
	var s Sums
	if err == nil {
		s, err = hashOpenFile(ctx, m, f, goMod)
	}
	return hashed(m, s, err)
}

// IsFileError reports whether err, from HashZip, is a failure of the file
// system (the zip removed, unreadable, a disk error) rather than of the
// zip's content: the caller's failure to answer for now, not a verdict on
// the module. Such a failure carries a syscall.Errno (ENOENT, EIO, EACCES,
// …), which neither modhash, x/mod/zip nor archive/zip makes of a zip's
// content (they report zip.FileError lists, zip.ErrFormat, flate's
// CorruptInputError and plain errors). An *fs.PathError alone is not
// enough: a zip whose directory offset points before the file makes the os
// package refuse a read at a negative offset, a PathError of its own text,
// and that is the content's fault.
//
// That no content makes an Errno rests on regfile, through which every
// byte HashZip reads passes: it hands the kernel no offset taken from the
// zip that the kernel would refuse (one before the file is its own
// error, one past the end io.EOF, where a pread(2) at 2^63-8 failed with
// EINVAL). The test is deliberately any Errno, not a list of those a
// failing disk gives (EIO, ENOENT, EACCES, ESTALE, ENOSPC…): file systems
// report damage and outages by many others (ext4 EUCLEAN and EBADMSG,
// ENODATA, a network mount's ETIMEDOUT or ENOTCONN), and one left out of
// a list would make a local failure a verdict on the module, remembered
// as invalid, where an Errno wrongly counted as local costs a 503 and a
// retry (TestIsFileErrorFarOffset holds the content to no Errno).
//
// A name that is not a regular file (a directory) is a file error too:
// regfile.ErrNotRegular, which no content makes either.
func IsFileError(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) || errors.Is(err, regfile.ErrNotRegular)
}

// HashDir zips dir as the go command would (zip.CreateFromDir, which leaves
// out VCS directories, vendored files and nested modules) into a temporary
// file in os.TempDir, and hashes that like HashZip with goMod nil.
func HashDir(m module.Version, dir string) (Sums, error) {
	s, err := hashDir(m, dir)
	if err != nil {
		return Sums{}, fmt.Errorf("failed to hash %s: %w", m, err)
	}
	return s, nil
}

func hashDir(m module.Version, dir string) (Sums, error) {
	if err := checkVersion(m); err != nil {
		return Sums{}, err
	}
	f, err := os.CreateTemp("", "modhash-*.zip")
	if err != nil {
		return Sums{}, err
	}
	defer os.Remove(f.Name())
	err = modzip.CreateFromDir(f, m, dir)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Sums{}, err
	}
	return hashZip(context.Background(), m, f.Name(), nil)
}

// GoModHash returns the hash of the go.sum line "path version/go.mod h1:...":
// dirhash.Hash1 over one file named "go.mod" with the given content, as
// cmd/go/internal/modfetch.goModSum computes it. Content over MaxGoMod is
// refused, as the go command refuses such a go.mod in a module.
func GoModHash(goMod []byte) (string, error) {
	if len(goMod) > MaxGoMod {
		return "", fmt.Errorf("go.mod file too large (%d bytes; limit is %d bytes)", len(goMod), MaxGoMod)
	}
	return dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(goMod)), nil
	})
}

// SynthesizedGoMod returns the go.mod the go command synthesizes for a module
// without one (cmd/go/internal/modfetch.LegacyGoMod): a module line and
// nothing else, not even a go line.
func SynthesizedGoMod(path string) []byte {
	return fmt.Appendf(nil, "module %s\n", modfile.AutoQuote(path))
}

func hashZip(ctx context.Context, m module.Version, zipPath string, goMod []byte) (Sums, error) {
	if err := checkVersion(m); err != nil {
		return Sums{}, err
	}
	f, err := regfile.Open(zipPath)
	if err != nil {
		return Sums{}, err
	}
	defer f.Close()
	return hashOpenFile(ctx, m, f, goMod)
}

// HashZipData is HashZip of a zip held in memory (a small upload, which
// need not be written to a file to be hashed).
func HashZipData(m module.Version, data []byte, goMod []byte) (Sums, error) {
	return HashZipDataContext(context.Background(), m, data, goMod)
}

// HashZipDataContext is HashZipData that stops once ctx is done, as
// HashZipContext does.
func HashZipDataContext(ctx context.Context, m module.Version, data []byte, goMod []byte) (Sums, error) {
	err := checkVersion(m)
	var s Sums
	if err == nil {
		s, err = hashData(ctx, m, data, goMod)
	}
	return hashed(m, s, err)
}

func hashData(ctx context.Context, m module.Version, data []byte, goMod []byte) (Sums, error) {
	z, done, err := openZipData(ctx, data)
	if err != nil {
		return Sums{}, err
	}
	defer done()
	s, err := hashOpenZipped(m, z, int64(len(data)), goMod)
	return s, stopped(ctx, int64(len(data)), err)
}

// hashOpenFile is hashZip of the open zip f, for m checked by checkVersion.
func hashOpenFile(ctx context.Context, m module.Version, f *regfile.File, goMod []byte) (Sums, error) {
	// One open for the checks, the go.mod and the hash: each open reads
	// the zip's directory again, and most zips are small. openZip refuses
	// a zip of more than MaxFiles entries before it reads the directory,
	// so that it never holds millions, and holds the zip's entries from
	// the MaxFilesInFlight budget until done.
	z, size, done, err := openZip(ctx, f)
	if err != nil {
		return Sums{}, err
	}
	defer done()
	s, err := hashOpenZipped(m, z, size, goMod)
	return s, stopped(ctx, size, err)
}

// hashOpenZipped checks and hashes the open zip z of size bytes.
func hashOpenZipped(m module.Version, z *zip.Reader, size int64, goMod []byte) (_ Sums, err error) {
	// archive/zip reports an entry whose header or data lies past the
	// end of the zip as a bare EOF, which reads as nothing to the go
	// command's user who sees it in a refusal ("invalid module: EOF").
	defer func() {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("zip is truncated or malformed: an entry lies past the end of the file (%w)", err)
		}
	}()
	// CheckZip's checks bound every size we read below, so they must
	// come before any content is read.
	if _, err := checkZip(m, z, size); err != nil {
		return Sums{}, err
	}
	inZip, err := zipGoMod(m, z)
	if err != nil {
		return Sums{}, err
	}
	mod, err := chooseGoMod(m, goMod, inZip)
	if err != nil {
		return Sums{}, err
	}
	// The go command refuses a module whose go.mod declares another path
	// ("module declares its path as ... but was required as ..."); a record
	// can never be removed, so a typo must not become one.
	if declared := modfile.ModulePath(mod); declared != m.Path {
		return Sums{}, fmt.Errorf("go.mod declares module path %q, not %q", declared, m.Path)
	}
	h, err := hashOpenZip(z)
	if err != nil {
		return Sums{}, err
	}
	gh, err := GoModHash(mod)
	if err != nil {
		return Sums{}, err
	}
	return Sums{Hash: h, GoMod: gh}, nil
}

// wholeZip is the size up to which openZip reads a zip into memory.
const wholeZip = 1 << 20

// openZip opens the zip f for reading; size is its size, and done gives
// back what it holds of the MaxFilesInFlight budget. Every read of a zip
// of more than wholeZip bytes, x/mod's and dirhash's included, fails once
// ctx is done (see ctxReaderAt), and so does a wait for the budget. A zip of up
// to wholeZip bytes is read into memory with one read: archive/zip reads a
// file's directory and every entry's header and data with a system call
// each, and system calls are most of what a small zip costs (hence also
// regfile rather than os.Open). A zip of more than MaxFiles entries is
// refused, by a *TooManyFilesError, before its directory is read (see
// checkFileCount).
func openZip(ctx context.Context, f *regfile.File) (z *zip.Reader, size int64, done func(), err error) {
	size = f.Size()
	if size > wholeZip {
		r := ctxReaderAt{ctx, f}
		n, err := checkFileCount(r, size, MaxFiles)
		if err != nil {
			return nil, 0, nil, err
		}
		release, err := holdFiles(ctx, inFlight, MaxFilesInFlight, n)
		if err != nil {
			return nil, 0, nil, err
		}
		z, err := zip.NewReader(r, size)
		if err != nil {
			release()
			return nil, 0, nil, err
		}
		return z, size, release, nil
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, 0, nil, fmt.Errorf("failed to read %s: %w", f.Name(), err)
	}
	z, done, err = openZipData(ctx, data)
	return z, size, done, err
}

// openZipData is openZip of a zip in memory.
func openZipData(ctx context.Context, data []byte) (z *zip.Reader, done func(), err error) {
	size := int64(len(data))
	var r io.ReaderAt = bytes.NewReader(data)
	if size > wholeZip {
		r = ctxReaderAt{ctx, r}
	}
	n, err := checkFileCount(r, size, MaxFiles)
	if err != nil {
		return nil, nil, err
	}
	release, err := holdFiles(ctx, inFlight, MaxFilesInFlight, n)
	if err != nil {
		return nil, nil, err
	}
	z, err = zip.NewReader(r, size)
	if err != nil {
		release()
		return nil, nil, err
	}
	return z, release, nil
}

// A ctxReaderAt reads from r until ctx is done, then fails every read with
// ctx's error: the readers of a zip of more than wholeZip bytes read
// through it, so that its hash stops within one read (a buffer of an
// entry) of its caller giving up. One check of ctx a read costs next to
// nothing beside the read.
type ctxReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (r ctxReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.ReadAt(p, off)
}

// checkVersion refuses what the go command refuses before it looks at any
// content: an invalid path, a non-canonical version ("v1.0"), or a version
// whose major version does not match the path's suffix (v2.0.0 without /v2).
func checkVersion(m module.Version) error {
	if v := module.CanonicalVersion(m.Version); v != m.Version {
		return fmt.Errorf("version %q is not canonical (should be %q)", m.Version, v)
	}
	return module.Check(m.Path, m.Version)
}

// readZipGoMod returns path@version/go.mod from the zip, or nil if it has
// none. The zip must have passed CheckZip (no duplicates, declared size
// within MaxGoMod); the limit here guards against a lying size header.
func readZipGoMod(m module.Version, zipPath string) ([]byte, error) {
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	return zipGoMod(m, &z.Reader)
}

// zipGoMod is readZipGoMod of an open zip.
func zipGoMod(m module.Version, z *zip.Reader) ([]byte, error) {
	name := m.Path + "@" + m.Version + "/go.mod"
	for _, f := range z.File {
		if f.Name != name {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, MaxGoMod+1))
		if err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", name, err)
		}
		if len(data) > MaxGoMod {
			return nil, fmt.Errorf("%s: go.mod file too large (max size is %d bytes)", name, MaxGoMod)
		}
		return data, nil
	}
	return nil, nil
}

// hashOpenZip is dirhash.HashZip(zipPath, dirhash.Hash1) of a zip already
// open: the same file list, in the zip's order, given to dirhash.Hash1. Its
// readers copy through pooled buffers: io.Copy into a hash would allocate
// 32 KiB for every file of every zip (FuzzHashZip holds the two to the
// same answers).
func hashOpenZip(z *zip.Reader) (string, error) {
	files := make([]string, 0, len(z.File))
	byName := make(map[string]*zip.File, len(z.File))
	for _, f := range z.File {
		files = append(files, f.Name)
		byName[f.Name] = f
	}
	return dirhash.Hash1(files, func(name string) (io.ReadCloser, error) {
		f := byName[name]
		if f == nil {
			return nil, fmt.Errorf("file %q not found in zip", name) // should never happen
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		return pooledReader{rc}, nil
	})
}

// copyBuffers recycles the buffers pooledReader copies through.
var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// A pooledReader is a zip entry's reader whose WriteTo, which io.Copy
// prefers, copies through a pooled buffer.
type pooledReader struct{ io.ReadCloser }

func (r pooledReader) WriteTo(w io.Writer) (int64, error) {
	buf := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(buf)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r.ReadCloser}, buf[:])
}

// chooseGoMod picks the go.mod to hash from the one given and the zip's own.
func chooseGoMod(m module.Version, given, inZip []byte) ([]byte, error) {
	incompatible := strings.HasSuffix(m.Version, "+incompatible")
	switch {
	case given != nil && inZip != nil:
		// The go command fetching from the origin takes the zip's go.mod
		// (codeRepo.GoMod), +incompatible or not: it makes one up only
		// for a zip without. Any other .mod (a torn copy of a go.mod
		// written in place, cut anywhere, even right after its module
		// line, where it is the made-up one) no origin gives, and a
		// record is for ever.
		if !bytes.Equal(given, inZip) {
			return nil, errors.New("go.mod differs from the go.mod in the zip")
		}
		return given, nil
	case inZip != nil:
		return inZip, nil
	}
	// The go command synthesizes a go.mod for a module at the repository root
	// on the v0/v1 line, for +incompatible versions and for gopkg.in paths
	// (whose ".vN" suffix predates modules); a "/vN" path must have a go.mod
	// (cmd/go/internal/modfetch.codeRepo.findDir).
	if _, major, _ := module.SplitPathVersion(m.Path); strings.HasPrefix(major, "/") && !incompatible {
		return nil, fmt.Errorf("zip has no go.mod, which a module path ending in %s requires", major)
	}
	synth := SynthesizedGoMod(m.Path)
	// A .mod given for a zip without go.mod (a proxy's, an upload's) is
	// that one or wrong: a go command fetching from the origin synthesizes
	// it, and would take any other recorded hash for a SECURITY ERROR.
	if given != nil && !bytes.Equal(given, synth) {
		return nil, fmt.Errorf("the zip has no go.mod, so the go command uses %q, but the go.mod given differs", synth)
	}
	return synth, nil
}

// GoModOf returns the go.mod the go command uses for module m from the zip
// at zipPath, which must have passed HashZip: the zip's own go.mod, or the
// one the go command synthesizes (SynthesizedGoMod). It is the .mod file a
// module proxy serves for m.
func GoModOf(m module.Version, zipPath string) ([]byte, error) {
	inZip, err := readZipGoMod(m, zipPath)
	if err != nil {
		return nil, fmt.Errorf("failed to read the go.mod of %s: %w", m, err)
	}
	return chooseGoMod(m, nil, inZip)
}
