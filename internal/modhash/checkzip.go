// checkZip and its helpers are ported from golang.org/x/mod v0.42.0,
// zip/zip.go (checkZip, collisionChecker, strToFold):
//
// Copyright 2019 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in golang.org/x/mod's LICENSE file.

package modhash

import (
	"archive/zip"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// checkZip is modzip.CheckZip of the zip of size bytes that z reads. x/mod
// has CheckZip only of a file name: it opens the zip again and reads its
// directory again, about half of what hashing a small zip cost (27 of 52
// µs), and z is read already. The checks, their order and their errors
// are CheckZip's, as of the x/mod version above; FuzzCheckZip holds the
// two to the same answers on the same bytes (its seeds run with every go
// test), which is how a change in a later x/mod that this copy lacks
// shows.
//
// CheckZip's first checks, of m's path and version, are checkVersion's,
// which HashZip makes first: m must have passed it.
func checkZip(m module.Version, z *zip.Reader, size int64) (modzip.CheckedFiles, error) {
	// Check the total file size.
	if size > modzip.MaxZipFile {
		cf := modzip.CheckedFiles{SizeError: fmt.Errorf("module zip file is too large (%d bytes; limit is %d bytes)", size, modzip.MaxZipFile)}
		return cf, cf.Err()
	}

	// Check for valid file names, collisions.
	var cf modzip.CheckedFiles
	addError := func(zf *zip.File, err error) {
		cf.Invalid = append(cf.Invalid, modzip.FileError{Path: zf.Name, Err: err})
	}
	prefix := fmt.Sprintf("%s@%s/", m.Path, m.Version)
	collisions := make(collisionChecker)
	var total int64
	for _, zf := range z.File {
		if !strings.HasPrefix(zf.Name, prefix) {
			addError(zf, fmt.Errorf("path does not have prefix %q", prefix))
			continue
		}
		name := zf.Name[len(prefix):]
		if name == "" {
			continue
		}
		isDir := strings.HasSuffix(name, "/")
		if isDir {
			name = name[:len(name)-1]
		}
		if path.Clean(name) != name {
			addError(zf, errPathNotClean)
			continue
		}
		if err := module.CheckFilePath(name); err != nil {
			addError(zf, err)
			continue
		}
		if err := collisions.check(name, isDir); err != nil {
			addError(zf, err)
			continue
		}
		if isDir {
			continue
		}
		if base := path.Base(name); strings.EqualFold(base, "go.mod") {
			if base != name {
				addError(zf, fmt.Errorf("go.mod file not in module root directory"))
				continue
			}
			if name != "go.mod" {
				addError(zf, errGoModCase)
				continue
			}
		}
		sz := int64(zf.UncompressedSize64)
		if sz >= 0 && modzip.MaxZipFile-total >= sz {
			total += sz
		} else if cf.SizeError == nil {
			cf.SizeError = fmt.Errorf("total uncompressed size of module contents too large (max size is %d bytes)", modzip.MaxZipFile)
		}
		if name == "go.mod" && sz > modzip.MaxGoMod {
			addError(zf, fmt.Errorf("go.mod file too large (max size is %d bytes)", modzip.MaxGoMod))
			continue
		}
		if name == "LICENSE" && sz > modzip.MaxLICENSE {
			addError(zf, fmt.Errorf("LICENSE file too large (max size is %d bytes)", modzip.MaxLICENSE))
			continue
		}
		cf.Valid = append(cf.Valid, zf.Name)
	}
	return cf, cf.Err()
}

// x/mod's unexported errors, with their texts.
var (
	errPathNotClean = errors.New("file path is not clean")
	errGoModCase    = errors.New("go.mod files must have lowercase names")
)

// collisionChecker finds case-insensitive name collisions and paths that
// are listed as both files and directories.
type collisionChecker map[string]pathInfo

type pathInfo struct {
	path  string
	isDir bool
}

func (cc collisionChecker) check(p string, isDir bool) error {
	fold := strToFold(p)
	if other, ok := cc[fold]; ok {
		if p != other.path {
			return fmt.Errorf("case-insensitive file name collision: %q and %q", other.path, p)
		}
		if isDir != other.isDir {
			return fmt.Errorf("entry %q is both a file and a directory", p)
		}
		if !isDir {
			return fmt.Errorf("multiple entries for file %q", p)
		}
		// It's not an error if check is called with the same directory multiple
		// times. check is called recursively on parent directories, so check
		// may be called on the same directory many times.
	} else {
		cc[fold] = pathInfo{path: p, isDir: isDir}
	}

	if parent := path.Dir(p); parent != "." {
		return cc.check(parent, true)
	}
	return nil
}

// strToFold returns a string with the property that
//
//	strings.EqualFold(s, t) iff strToFold(s) == strToFold(t)
//
// This lets us test a large set of strings for fold-equivalent
// duplicates without making a quadratic number of calls
// to EqualFold. Note that strings.ToUpper and strings.ToLower
// do not have the desired property in some corner cases.
func strToFold(s string) string {
	// Fast path: all ASCII, no upper case.
	// Most paths look like this already.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			goto Slow
		}
	}
	return s

Slow:
	var buf strings.Builder
	for _, r := range s {
		// SimpleFold(x) cycles to the next equivalent rune > x
		// or wraps around to smaller values. Iterate until it wraps,
		// and we've found the minimum value.
		for {
			r0 := r
			r = unicode.SimpleFold(r0)
			if r <= r0 {
				break
			}
		}
		// Exception to allow fast path above: A-Z => a-z
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		buf.WriteRune(r)
	}
	return buf.String()
}
