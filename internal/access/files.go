package access

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/upstream"
)

// The credential files share one line format, an extension of htpasswd's
// (whose tools keep what follows the hash, as nginx reads it):
//
//	NAME:SECRET[:ROLE[:PATTERNS]]
//
//	basic   (-read-auth basic)  SECRET is a bcrypt hash, as htpasswd -B writes it
//	bearer  (-read-auth bearer) SECRET is the token, 16 bytes or more
//	certs   (-tls-client-roles) SECRET is a certificate subject, as Go prints it
//	        (RFC 2253: CN=athens.corp.example,O=Corp); it cannot hold ":"
//
// NAME is what logs and metrics call the credential: letters, digits and
// ". _ @ + -", up to 64 bytes. ROLE is reader (the default), auditor or
// admin. PATTERNS, for a reader only, limits it to module paths matching
// them (GOPRIVATE syntax: corp.example/team-a/*,corp.example/shared); if
// the field is there, it may not be empty.
// Blank lines and lines starting with # are ignored. A file with a bad
// line is refused whole, naming the line and its NAME but quoting no other
// field: a secret holding ":" is split, and its tail would be the role or
// the patterns.

// A credential is one line of a credential file.
type credential struct {
	name     string
	secret   string
	role     Role
	patterns string
	p        *Principal // what it authenticates as, made once: requests share it
}

// setMethod makes c's principal, authenticated by method.
func (c *credential) setMethod(method string) {
	c.p = &Principal{Name: c.name, Role: c.role, Patterns: c.patterns, Method: method}
}

// maxName caps a credential's name: it is a metric label.
const maxName = 64

// parseLines parses the lines of a credential file, calling add for each.
func parseLines(data []byte, add func(c *credential) error) error {
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxCredentialFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c, err := parseLine(line)
		if err == nil && names[c.name] {
			err = fmt.Errorf("%s is named twice", c.name)
		}
		if err == nil {
			err = add(c)
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		names[c.name] = true
	}
	return sc.Err()
}

// parseLine parses NAME:SECRET[:ROLE[:PATTERNS]].
func parseLine(line string) (*credential, error) {
	fields := strings.Split(line, ":")
	if len(fields) < 2 || len(fields) > 4 {
		return nil, errors.New("want NAME:SECRET[:ROLE[:PATTERNS]]")
	}
	c := &credential{name: fields[0], secret: fields[1], role: Reader}
	if err := checkName(c.name); err != nil {
		return nil, err
	}
	if c.secret == "" {
		return nil, fmt.Errorf("%s has an empty secret", c.name)
	}
	if len(fields) > 2 && fields[2] != "" {
		r, err := ParseRole(fields[2])
		if err != nil {
			// Not quoted: a secret holding ":" puts its tail here.
			return nil, fmt.Errorf("%s: field 3 is not a role: want reader, auditor or admin", c.name)
		}
		c.role = r
	}
	if len(fields) > 3 {
		c.patterns = fields[3]
		if c.patterns == "" {
			// No patterns would mean every module: a line cut after its
			// last ':' must not widen what it grants.
			return nil, fmt.Errorf("%s: field 4 (module path patterns) is empty: name the patterns, or drop the last ':' for a reader of every module", c.name)
		}
		if err := checkPatterns(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func checkName(name string) error {
	switch name {
	case "":
		return errors.New("empty name")
	case anonymousName, adminTokenName, invalidName:
		return fmt.Errorf("the name %q is reserved", name)
	}
	if len(name) > maxName {
		return fmt.Errorf("name longer than %d bytes", maxName)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._@+-", r)) {
			return fmt.Errorf("name %q: use letters, digits and . _ @ + - only", name)
		}
	}
	return nil
}

func checkPatterns(c *credential) error {
	switch {
	case c.patterns == "":
		return nil
	case c.role != Reader:
		return fmt.Errorf("%s: only a reader can be limited to module paths: an %s reads every record through data tiles", c.name, c.role)
	case strings.ContainsAny(c.patterns, " \t"):
		return fmt.Errorf("%s: patterns are comma-separated, without spaces", c.name)
	case upstream.CheckPatterns(c.patterns) != nil:
		// Not quoted, nor the error that quotes them: a secret holding
		// ":" puts its tail here.
		return fmt.Errorf("%s: field 4 is not a list of module path patterns (GOPRIVATE syntax: corp.example/team-a/*,corp.example/shared)", c.name)
	}
	return nil
}

// maxBcryptCost caps the bcrypt cost of a hash: each step doubles the time
// of a check, about a second at 14 on a small server.
const maxBcryptCost = 14

// A basicFile is an htpasswd file of bcrypt hashes.
type basicFile struct {
	users map[string]*credential
	// The bcrypt cost and hash of each user, in the order of their names:
	// an unknown name pays one of the costs (basicStore.unknownCost).
	costs   []int
	secrets []string
}

func parseBasicFile(data []byte) (basicFile, error) {
	f := basicFile{users: map[string]*credential{}}
	byName := map[string]int{}
	err := parseLines(data, func(c *credential) error {
		cost, err := bcrypt.Cost([]byte(c.secret))
		switch {
		case err != nil || !strings.HasPrefix(c.secret, "$2"):
			return fmt.Errorf("%s: not a bcrypt hash; create it with htpasswd -B (other htpasswd hashes are refused)", c.name)
		case cost > maxBcryptCost:
			return fmt.Errorf("%s: bcrypt cost %d is above %d: each check would take seconds (htpasswd -B -C %d or less)", c.name, cost, maxBcryptCost, maxBcryptCost)
		}
		c.setMethod("basic")
		f.users[c.name] = c
		byName[c.name] = cost
		return nil
	})
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		f.costs, f.secrets = append(f.costs, byName[name]), append(f.secrets, f.users[name].secret)
	}
	if err == nil && len(f.users) == 0 {
		err = errNoCredentials
	}
	return f, err
}

// errNoCredentials refuses a -read-auth file that holds no credential,
// at start and when it is read again: every client would be refused, and
// the server's health would say nothing of it (an error does: the status
// and the log). A mistake, not a configuration: to lock everyone out, stop
// the server.
var errNoCredentials = errors.New("holds no credentials, so every client is refused: emptied, or every line commented out?")

// A tokenFile holds named bearer tokens, by the SHA-256 of the token: the
// lookup's timing depends on a digest, never on the token's bytes.
type tokenFile struct {
	tokens map[[32]byte]*credential
}

func parseTokenFile(data []byte) (tokenFile, error) {
	f := tokenFile{tokens: map[[32]byte]*credential{}}
	err := parseLines(data, func(c *credential) error {
		if len(c.secret) < admin.MinTokenLength {
			return fmt.Errorf("%s: the token is shorter than %d bytes", c.name, admin.MinTokenLength)
		}
		d := sha256.Sum256([]byte(c.secret))
		if _, dup := f.tokens[d]; dup {
			return fmt.Errorf("%s: the token is another credential's too", c.name)
		}
		c.setMethod("bearer")
		f.tokens[d] = c
		return nil
	})
	if err == nil && len(f.tokens) == 0 {
		err = errNoCredentials
	}
	return f, err
}

// A certFile maps certificate subjects to credentials.
type certFile struct {
	subjects map[string]*credential
}

func parseCertFile(data []byte) (certFile, error) {
	f := certFile{subjects: map[string]*credential{}}
	err := parseLines(data, func(c *credential) error {
		if _, dup := f.subjects[c.secret]; dup {
			return fmt.Errorf("%s: the subject is another credential's too", c.name)
		}
		c.setMethod("certificate")
		f.subjects[c.secret] = c
		return nil
	})
	return f, err
}
