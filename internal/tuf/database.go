package tuf

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// TileHeight is the tile height of every sumd log, and the only one the go
// command reads.
const TileHeight = 8

// A Database is what a repository publishes about a checksum database,
// as the targets sumdb/NAME.vkey and sumdb/NAME.json.
type Database struct {
	// Name is the checksum database name, as in GOSUMDB.
	Name string `json:"name"`
	// VerifierKeys are the keys the log signs every tree head with, oldest
	// first: one, or the old and the new during a key rotation.
	VerifierKeys []string `json:"verifier_keys"`
	// URL is where clients reach the database; empty if they find it
	// through GOPROXY (PROTOCOL.md §1).
	URL string `json:"url,omitempty"`
	// TileHeight is always 8.
	TileHeight int `json:"tile_height"`
}

// maxTarget caps a published target: the vkey file holds a few keys of
// under 100 bytes each.
const maxTarget = 64 << 10

// NewDatabase describes the database whose log signs with vkeys.
func NewDatabase(vkeys []string, url string) (*Database, error) {
	d := &Database{VerifierKeys: vkeys, URL: url, TileHeight: TileHeight}
	if len(vkeys) > 0 {
		if v, err := note.NewVerifier(vkeys[0]); err == nil {
			d.Name = v.Name()
		}
	}
	return d, d.check()
}

// check reports whether d is fit to publish, or to believe.
func (d *Database) check() error {
	if len(d.VerifierKeys) == 0 {
		return errors.New("no verifier key")
	}
	for i, vkey := range d.VerifierKeys {
		v, err := note.NewVerifier(vkey)
		switch {
		case err != nil:
			return fmt.Errorf("malformed verifier key %q: %w", vkey, err)
		case v.Name() != d.Name:
			return fmt.Errorf("verifier key %s is for %q, not %q", vkey, v.Name(), d.Name)
		case slices.Contains(d.VerifierKeys[:i], vkey):
			return fmt.Errorf("verifier key %s is listed twice", vkey)
		}
	}
	if !validFileName(fileName(d.Name)) {
		return fmt.Errorf("database name %q cannot name a target file", d.Name)
	}
	if d.TileHeight != TileHeight {
		return fmt.Errorf("tile height %d: sumd and the go command use %d", d.TileHeight, TileHeight)
	}
	return nil
}

// GOSUMDB is the value of the go command's GOSUMDB for d: its oldest key
// and its URL, as sumd serve prints it. The go command takes one key and
// checks the tree head it kept ($GOPATH/pkg/sumdb/NAME/latest) with it at
// every start: a machine whose head was signed before the rotation, by
// the old key alone, would be locked out by the new key. Every head of
// the overlap carries both signatures, so once the old key is retired
// (and d lists the new one alone) the new key verifies what it kept.
func (d *Database) GOSUMDB() string {
	v := d.VerifierKeys[0]
	if d.URL != "" {
		v += " " + d.URL
	}
	return v
}

// fileName is a database name as a file name: "/" becomes "_", as in the
// key files of sumd keygen.
func fileName(name string) string { return strings.ReplaceAll(name, "/", "_") }

// VKeyTarget is the target path of the verifier keys of database name.
func VKeyTarget(name string) string { return "sumdb/" + fileName(name) + ".vkey" }

// JSONTarget is the target path of the description of database name.
func JSONTarget(name string) string { return "sumdb/" + fileName(name) + ".json" }

// targets returns d's target files, by target path.
func (d *Database) targets() (map[string][]byte, error) {
	js, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode database: %w", err)
	}
	vkeys := strings.Join(d.VerifierKeys, "\n") + "\n"
	return map[string][]byte{
		VKeyTarget(d.Name): []byte(vkeys),
		JSONTarget(d.Name): append(js, '\n'),
	}, nil
}

// ParseDatabase parses the two targets of a database (as downloaded and
// verified by TUF) and checks that they agree: the same keys, in the same
// order, all for the database the JSON names.
func ParseDatabase(vkeyFile, jsonFile []byte) (*Database, error) {
	vkeys, err := parseVKeys(vkeyFile)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the .vkey target: %w", err)
	}
	var d Database
	if err := json.Unmarshal(jsonFile, &d); err != nil {
		return nil, fmt.Errorf("failed to parse the .json target: %w", err)
	}
	if !slices.Equal(d.VerifierKeys, vkeys) {
		return nil, errors.New("the .vkey and .json targets list different keys")
	}
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("database %q: %w", d.Name, err)
	}
	return &d, nil
}

// parseVKeys parses a vkey file: verifier keys, one per line, each line
// ending in a newline.
func parseVKeys(data []byte) ([]string, error) {
	text, ok := strings.CutSuffix(string(data), "\n")
	if !ok || text == "" {
		return nil, errors.New("want one verifier key per line, the last ending in a newline")
	}
	vkeys := strings.Split(text, "\n")
	for _, vkey := range vkeys {
		if _, err := note.NewVerifier(vkey); err != nil {
			return nil, fmt.Errorf("malformed verifier key %q: %w", vkey, err)
		}
	}
	return vkeys, nil
}

// databaseName returns the database a repository's targets describe: the
// NAME of its only sumdb/NAME.vkey target.
func databaseName(paths []string) (string, error) {
	var names []string
	for _, p := range paths {
		if base, ok := strings.CutPrefix(p, "sumdb/"); ok && strings.HasSuffix(base, ".vkey") {
			names = append(names, strings.TrimSuffix(base, ".vkey"))
		}
	}
	switch len(names) {
	case 0:
		return "", errors.New("the repository publishes no sumdb/NAME.vkey target")
	case 1:
		return names[0], nil
	}
	slices.Sort(names)
	return "", fmt.Errorf("the repository publishes several databases (%s)", strings.Join(names, ", "))
}
