package config

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// privateKeyPrefix starts every note private key.
const privateKeyPrefix = "PRIVATE+KEY+"

// ErrPrivateKey is the error for a private signing key given where a
// verifier key is wanted. The key's text is never repeated.
var ErrPrivateKey = errors.New("a private signing key, not a verifier key")

// IsPrivateKey reports whether s holds a note private key.
func IsPrivateKey(s string) bool { return strings.Contains(s, privateKeyPrefix) }

// ParseVerifierKeyFile returns the verifier keys a file such as
// keys/NAME.vkey holds: one or more "name+hash+base64" (as in GOSUMDB),
// separated by white space. A file holding a private key is refused with
// ErrPrivateKey.
func ParseVerifierKeyFile(data []byte) ([]string, error) {
	if IsPrivateKey(string(data)) {
		return nil, ErrPrivateKey
	}
	vkeys := strings.Fields(string(data))
	if err := CheckVerifierKeys(vkeys); err != nil {
		return nil, err
	}
	return vkeys, nil
}

// CheckVerifierKeys checks that vkeys holds at least one verifier key and
// only well-formed ones.
func CheckVerifierKeys(vkeys []string) error {
	if len(vkeys) == 0 {
		return errors.New("no verifier key")
	}
	for _, v := range vkeys {
		if IsPrivateKey(v) {
			return ErrPrivateKey
		}
		if _, err := note.NewVerifier(v); err != nil {
			return fmt.Errorf("malformed verifier key: %w", err)
		}
	}
	return nil
}
