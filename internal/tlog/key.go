package tlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumd-project/sumd/internal/secret"
)

// A Key is the log's signing key with its verifier.
type Key struct {
	signer   note.Signer // nil for a lost key (Options.LostKey), which only verifies
	verifier note.Verifier
	vkey     string
}

// GenerateKey returns a new Ed25519 signing key for checksum database name,
// as the text of a private key ("PRIVATE+KEY+name+hash+...") and of its
// verifier key ("name+hash+...", the value of GOSUMDB).
func GenerateKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// ParseKey parses a private key in note format.
func ParseKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("malformed signing key (want the PRIVATE+KEY+... text written by sumd keygen): %w", err)
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("failed to derive verifier key: %w", err)
	}
	k := &Key{signer: signer, verifier: verifier, vkey: vkey}
	// Prove the pair works before anything is signed with it.
	if _, err := (keySet{k}).openTree(k.mustSignEmpty()); err != nil {
		return nil, fmt.Errorf("signing key does not match its derived verifier key: %w", err)
	}
	return k, nil
}

// maxKeyFile caps a signing key file; a key is about 100 bytes.
const maxKeyFile = 4 << 10

// ReadKeyFile reads a private key file written by sumd keygen. A file that
// users other than its owner may access is refused with a
// *secret.ModeError.
func ReadKeyFile(path string) (*Key, error) {
	data, _, err := secret.ReadFile(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("failed to read signing key: %w", err)
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Name is the checksum database name the key signs for.
func (k *Key) Name() string { return k.verifier.Name() }

// VerifierKey is the key's verifier key in note format.
func (k *Key) VerifierKey() string { return k.vkey }

// Signer is the key's note signer.
func (k *Key) Signer() note.Signer { return k.signer }

// Verifier is the key's note verifier.
func (k *Key) Verifier() note.Verifier { return k.verifier }

// verifierKey derives the verifier key from a note private key
// "PRIVATE+KEY+<name>+<hash>+<base64(alg ‖ seed)>". x/mod offers no such
// derivation, so this takes the key apart; the key pair itself is x/mod's
// (note.NewEd25519VerifierKey) and ParseKey checks the result by signing.
func verifierKey(skey string) (string, error) {
	f := strings.SplitN(skey, "+", 5)
	if len(f) != 5 {
		return "", errors.New("malformed signing key")
	}
	raw, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("signing key is not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(f[2], pub)
}

// mustSignEmpty signs the empty tree; it is used to check a key pair.
func (k *Key) mustSignEmpty() []byte {
	head, err := (keySet{k}).signTree(emptyTree())
	if err != nil {
		return nil
	}
	return head
}
