package sumdbclient

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The Go team's checksum database: its name, its verifier key as built into
// the go command, and its URL.
const (
	SumGolangOrg    = "sum.golang.org"
	SumGolangOrgKey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
	SumGolangOrgURL = "https://sum.golang.org"
)

// MaxTreeSize is the largest tree a signed head may claim: x/mod's tlog
// never returns from the hash of a tree of 2^62 records or more
// (subTreeIndex asks maxpow2 for the power of two below n+1, whose loop
// overflows past 1<<62), and nothing real comes near it.
// Verifiers.Limit sets a smaller bound.
const MaxTreeSize = 1<<62 - 1

// Verifiers are the verifier keys of one database: one, or several during a
// key rotation, when a head signed by any of them verifies (the go
// command's rule, PROTOCOL.md §2).
type Verifiers struct {
	keys []string // without repeats, in the order given
	vs   []note.Verifier
	max  int64 // the largest tree Open accepts; 0 means MaxTreeSize
}

// A TreeSizeError is a signed head, verified, of a tree larger than its
// reader accepts: only a broken or compromised origin signs one.
type TreeSizeError struct {
	N, Max int64
}

func (e *TreeSizeError) Error() string {
	return fmt.Sprintf("it claims a tree of %d records, more than the %d accepted: a broken or compromised origin", e.N, e.Max)
}

// ParseVerifiers parses verifier keys ("name+hash+base64"), which must all
// name one database. A key given twice is kept once, however its hash is
// spelled (note takes it in either case): note refuses two verifiers of
// one name and hash as ambiguous, for every head.
func ParseVerifiers(vkeys ...string) (*Verifiers, error) {
	v := new(Verifiers)
	for _, vkey := range vkeys {
		vkey = strings.TrimSpace(vkey)
		nv, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("invalid verifier key: %w", err)
		}
		i := slices.IndexFunc(v.vs, func(x note.Verifier) bool { return x.Name() == nv.Name() && x.KeyHash() == nv.KeyHash() })
		switch {
		case i >= 0 && canonicalKey(v.keys[i]) == canonicalKey(vkey):
			continue
		case i >= 0:
			return nil, fmt.Errorf("the verifier keys %s and %s are two keys of one name and key hash: note cannot tell them apart", v.keys[i], vkey)
		case len(v.vs) > 0 && nv.Name() != v.vs[0].Name():
			return nil, fmt.Errorf("the verifier keys name two databases, %s and %s", v.vs[0].Name(), nv.Name())
		}
		v.keys, v.vs = append(v.keys, vkey), append(v.vs, nv)
	}
	if len(v.vs) == 0 {
		return nil, errors.New("no verifier key")
	}
	return v, nil
}

// canonicalKey is a verifier key, which note.NewVerifier has accepted,
// with its hash in lower case, as note writes it.
func canonicalKey(vkey string) string {
	name, rest, _ := strings.Cut(vkey, "+")
	hash, key, _ := strings.Cut(rest, "+")
	return name + "+" + strings.ToLower(hash) + "+" + key
}

// Name is the database's name.
func (v *Verifiers) Name() string { return v.vs[0].Name() }

// Keys returns the verifier keys.
func (v *Verifiers) Keys() []string { return slices.Clone(v.keys) }

// CheckTreeSize refuses an answer holding a tree head (a lookup's, or
// /latest) whose tree claims more than MaxTreeSize records, before x/mod's
// sumdb.Client, which verifies it next, would never return from its proofs
// of such a tree. Only a broken or compromised database signs one; the
// signature is the client's to check.
func CheckTreeSize(data []byte) error {
	// The head of a lookup follows its record, whose text may hold
	// anything, a line like a head's too: skip it as x/mod's client does.
	if _, _, rest, err := tlog.ParseRecord(data); err == nil {
		data = rest
	}
	text, ok := bytes.CutPrefix(data, []byte("go.sum database tree\n"))
	if !ok {
		return nil
	}
	line, _, _ := bytes.Cut(text, []byte("\n"))
	if n, err := strconv.ParseInt(string(line), 10, 64); err == nil && n > MaxTreeSize {
		return fmt.Errorf("the database's tree head claims %d records, more than %d: a broken or compromised database", n, int64(MaxTreeSize))
	}
	return nil
}

// Limit returns the keys, refusing heads of trees over max records (at
// most MaxTreeSize): for a reader whose work grows with the tree, such as
// a mirror, which copies all of it.
func (v *Verifiers) Limit(max int64) *Verifiers {
	c := *v
	c.max = min(max, MaxTreeSize)
	return &c
}

// Open verifies a signed tree head with the keys and parses its tree. An
// error is a *note.UnverifiedNoteError (no known key signed it), a
// *note.InvalidSignatureError (a known key's signature is wrong: altered
// or forged), a *TreeSizeError (a tree over the limit), or a malformed
// note or tree.
func (v *Verifiers) Open(msg []byte) (tlog.Tree, error) {
	n, err := note.Open(msg, note.VerifierList(v.vs...))
	if err != nil {
		return tlog.Tree{}, err
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		return tlog.Tree{}, err
	}
	limit := int64(MaxTreeSize)
	if v.max > 0 {
		limit = v.max
	}
	if tree.N > limit {
		return tlog.Tree{}, &TreeSizeError{N: tree.N, Max: limit}
	}
	return tree, nil
}

// Signer returns the verifier key of the first of the keys that signed
// msg, or the first key if none did.
func (v *Verifiers) Signer(msg []byte) string {
	if s := v.Signers(msg); len(s) > 0 {
		return s[0]
	}
	return v.keys[0]
}

// Signers returns the verifier keys, of those given, that signed msg.
func (v *Verifiers) Signers(msg []byte) []string {
	var vkeys []string
	for i, nv := range v.vs {
		if _, err := note.Open(msg, note.VerifierList(nv)); err == nil {
			vkeys = append(vkeys, v.keys[i])
		}
	}
	return vkeys
}

// Describe names the keys briefly, "name+hash" joined by " or ", for
// messages.
func (v *Verifiers) Describe() string {
	var names []string
	for _, nv := range v.vs {
		names = append(names, fmt.Sprintf("%s+%08x", nv.Name(), nv.KeyHash()))
	}
	return strings.Join(names, " or ")
}

// Explain says why a signed head from where (such as "/latest") did not
// verify: the explanation an operator needs for each kind of failure. flag
// is the option that gave the keys ("-key" of sumd verify, "-origin-key"
// of sumd mirror), which the operator is told to check.
func (v *Verifiers) Explain(where, flag string, err error) string {
	key := v.Describe()
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		var signers []string
		for _, s := range unverified.Note.UnverifiedSigs {
			signers = append(signers, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
		}
		return fmt.Sprintf("the tree head from %s is not signed by key %s; it is signed by %s only: "+
			"check %s, or the database's key has changed", where, key, Quote(strings.Join(signers, ", ")), flag)
	case errors.As(err, &invalid):
		return fmt.Sprintf("SECURITY ERROR: the signature of key %s on the tree head from %s does not verify: "+
			"the head was altered in transit or forged", key, where)
	}
	return fmt.Sprintf("the tree head from %s is not a valid signed tree head: %v", where, err)
}
