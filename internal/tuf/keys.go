package tuf

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/sumd-project/sumd/internal/secret"
)

// A Key is the private key of a TUF role: an Ed25519 key, its sigstore
// signer (which go-tuf's Metadata.Sign takes) and its public half as
// root.json lists it.
type Key struct {
	priv   ed25519.PrivateKey
	signer signature.Signer
	public *metadata.Key
	id     string
}

// maxKeyFile caps a key file read: a PEM Ed25519 key is about 120 bytes.
const maxKeyFile = 16 << 10

// GenerateKey returns a new Ed25519 role key.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate key: %w", err)
	}
	return newKey(priv)
}

func newKey(priv ed25519.PrivateKey) (*Key, error) {
	signer, err := signature.LoadSigner(priv, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("failed to load signer: %w", err)
	}
	public, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("failed to convert public key: %w", err)
	}
	id, err := public.ID()
	if err != nil {
		return nil, fmt.Errorf("failed to compute key id: %w", err)
	}
	return &Key{priv: priv, signer: signer, public: public, id: id}, nil
}

// ID is the key's TUF key id (hex SHA-256 of its canonical public key).
func (k *Key) ID() string { return k.id }

// ReadKeyFile reads a PEM (PKCS#8) Ed25519 private key file, refusing one
// that other users may access (a *secret.ModeError), as sumd's other secrets.
func ReadKeyFile(path string) (*Key, error) {
	data, _, err := secret.ReadFile(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read key: %w", err)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(data, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to parse key %s: %w", path, err)
	}
	edPriv, ok := priv.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s is a %T, not an Ed25519 key", path, priv)
	}
	return newKey(edPriv)
}

// WriteFile writes the private key to path, mode 0600, refusing to
// overwrite a file (an error matching fs.ErrExist): a lost role key
// cannot be recovered from the metadata. The directory is created mode
// 0700 with a .gitignore of "*". The key is written to a temporary file,
// synced, then linked to path, so a crash or a full disk leaves no empty
// or partial key file behind to be taken for a key.
func (k *Key) WriteFile(path string) error {
	dir := filepath.Dir(path)
	if err := makeKeyDir(dir); err != nil {
		return err
	}
	data, err := cryptoutils.MarshalPrivateKeyToPEM(k.priv)
	if err != nil {
		return fmt.Errorf("failed to encode key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-key-")
	if err != nil {
		return fmt.Errorf("failed to create key file: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err = errors.Join(err, f.Chmod(0o600), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("failed to write key file %s: %w", path, err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		return fmt.Errorf("failed to create key file: %w", err)
	}
	return syncDir(dir)
}

// makeKeyDir creates a key directory. Its .gitignore keeps the keys out of
// a repository the directory happens to live in.
func makeKeyDir(dir string) error {
	if err := mkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create key directory: %w", err)
	}
	ignore := filepath.Join(dir, ".gitignore")
	if _, err := os.Stat(ignore); errors.Is(err, fs.ErrNotExist) {
		text := "# TUF private keys: never commit them.\n*\n"
		if err := os.WriteFile(ignore, []byte(text), 0o600); err != nil {
			return fmt.Errorf("failed to write %s: %w", ignore, err)
		}
	}
	return nil
}

// KeyFileName is the file name of a key of role: <role>-<keyid[:8]>.key.
func KeyFileName(role string, k *Key) string {
	return role + "-" + k.id[:8] + ".key"
}

// OfflineKeyFiles returns the paths of the root and targets key files
// (root-*.key, targets-*.key) in dir, the online keys' directory: the
// server never reads them there, but a key on the host that signs online
// undoes what keeping the root and targets keys offline protects (a
// thief of the host could publish keys of their own). A missing dir has
// none.
func OfflineKeyFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to list keys: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".key") && (strings.HasPrefix(name, metadata.ROOT+"-") || strings.HasPrefix(name, metadata.TARGETS+"-")) {
			files = append(files, filepath.Join(dir, name))
		}
	}
	return files, nil
}

// readRoleKeys reads every key file of role (<role>-*.key) in dirs. A
// file that cannot be read or parsed (left empty by a crash, a stray copy,
// a key of the wrong mode) is skipped and returned in skipped: it stops
// nothing unless the role's threshold needs it (roleKeys).
func readRoleKeys(role string, dirs []string) (keys []*Key, skipped []error, err error) {
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("failed to list keys: %w", err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), role+"-") || !strings.HasSuffix(e.Name(), ".key") {
				continue
			}
			k, err := ReadKeyFile(filepath.Join(dir, e.Name()))
			if err != nil {
				skipped = append(skipped, err)
				continue
			}
			keys = append(keys, k)
		}
	}
	return keys, skipped, nil
}

// roleKeys returns the keys of role found in dirs that root lists for it,
// failing unless they reach the role's threshold.
func roleKeys(root *metadata.Metadata[metadata.RootType], role string, dirs []string) ([]*Key, error) {
	keys, _, err := findRoleKeys(root, role, dirs)
	return keys, err
}

// findRoleKeys is roleKeys, also returning the key files it skipped
// (readRoleKeys) for the caller to report.
func findRoleKeys(root *metadata.Metadata[metadata.RootType], role string, dirs []string) ([]*Key, []error, error) {
	all, skipped, err := readRoleKeys(role, dirs)
	if err != nil {
		return nil, nil, err
	}
	r := root.Signed.Roles[role]
	keys := uniqueKeys(slices.DeleteFunc(all, func(k *Key) bool { return !slices.Contains(r.KeyIDs, k.id) }))
	if len(keys) < r.Threshold {
		return nil, skipped, &MissingKeysError{Role: role, Have: len(keys), Threshold: r.Threshold, IDs: shortIDs(r.KeyIDs), Dirs: dirs, Unreadable: skipped}
	}
	return keys, skipped, nil
}

// A MissingKeysError means too few keys of a role were found to sign it.
type MissingKeysError struct {
	Role      string
	Have      int
	Threshold int
	IDs       []string // the role's key ids (first 8 hex digits)
	Dirs      []string
	// Unreadable are the role's key files that could not be read or
	// parsed: one of them may be a key the threshold needs.
	Unreadable []error
}

func (e *MissingKeysError) Error() string {
	msg := fmt.Sprintf("signing %s needs %d of its keys (%s-<id>.key with id %s), but %d were found in %s",
		e.Role, e.Threshold, e.Role, strings.Join(e.IDs, ", "), e.Have, strings.Join(e.Dirs, ", "))
	if len(e.Unreadable) > 0 {
		msg += "; skipped: " + errors.Join(e.Unreadable...).Error()
	}
	return msg
}

// Unwrap returns the errors of the key files skipped, so that a
// *secret.ModeError among them can be found.
func (e *MissingKeysError) Unwrap() []error { return e.Unreadable }

func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:min(8, len(id))]
	}
	return out
}

// uniqueKeys drops repeated keys (one key file copied to two media).
func uniqueKeys(keys []*Key) []*Key {
	var out []*Key
	for _, k := range keys {
		if !slices.ContainsFunc(out, func(x *Key) bool { return x.id == k.id }) {
			out = append(out, k)
		}
	}
	return out
}

// sign signs m with every key, after clearing its old signatures.
func sign[T metadata.Roles](m *metadata.Metadata[T], keys []*Key) error {
	m.ClearSignatures()
	for _, k := range keys {
		if _, err := m.Sign(k.signer); err != nil {
			return fmt.Errorf("failed to sign: %w", err)
		}
	}
	return nil
}
