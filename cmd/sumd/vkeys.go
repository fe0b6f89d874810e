package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sumd-project/sumd/internal/config"
)

// readVKeys returns the verifier keys given to option as s: inline
// ("name+hash+base64", comma-separated) or the path of a file holding them,
// one per line, such as keys/NAME.vkey. A private key is refused.
func readVKeys(option, s string) ([]string, error) {
	hint := "give " + option + " a verifier key (\"name+hash+base64\", as in GOSUMDB) or its file, keys/NAME.vkey"
	if config.IsPrivateKey(s) {
		return nil, usageError(fmt.Errorf("%s is a private signing key, not a verifier key", option), hint)
	}
	if vkeys := strings.Split(s, ","); config.CheckVerifierKeys(vkeys) == nil {
		return vkeys, nil
	}
	data, err := readSmallFile(s, 64<<10)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s %q is neither a verifier key nor a readable file: %w", option, s, err), hint)
	}
	vkeys, err := config.ParseVerifierKeyFile(data)
	switch {
	case err == config.ErrPrivateKey:
		return nil, usageError(fmt.Errorf("%s holds a private signing key, not a verifier key", s),
			"give the .vkey file beside it: this never needs the private key (a SUMD_KEY or config file key meant for serve names the signing key)")
	case err != nil:
		return nil, usageError(fmt.Errorf("%s does not hold verifier keys: %w", s, err), hint)
	}
	return vkeys, nil
}

// readVKey is readVKeys for an option that takes exactly one key.
func readVKey(option, s string) (string, error) {
	vkeys, err := readVKeys(option, s)
	if err == nil && len(vkeys) != 1 {
		err = usageError(fmt.Errorf("%s takes one verifier key, got %d", option, len(vkeys)), "give the key of one log")
	}
	if err != nil {
		return "", err
	}
	return vkeys[0], nil
}

func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("larger than %d bytes", limit)
	}
	return data, err
}
