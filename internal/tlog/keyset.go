package tlog

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A keySet is the keys a log signs every tree head with, in the order the
// database lists them. Outside a key rotation it holds one key; during one,
// the old and the new: the go command ignores signatures by keys it does not
// know (PROTOCOL.md §2), so clients pinned to either key keep verifying.
type keySet []*Key

func (ks keySet) name() string { return ks[0].Name() }

func (ks keySet) vkeys() []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.VerifierKey()
	}
	return out
}

// signTree signs tree with every key of the set. A set holding a lost key
// signs nothing: a head without that key's signature would retire it
// behind the operator's back.
func (ks keySet) signTree(tree tlog.Tree) ([]byte, error) {
	signers := make([]note.Signer, len(ks))
	for i, k := range ks {
		if k.signer == nil {
			return nil, fmt.Errorf("cannot sign with %s: its private key is lost; retire it first (sumd key retire -retire %s)", k.vkey, k.vkey)
		}
		signers[i] = k.signer
	}
	head, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tree))}, signers...)
	if err != nil {
		return nil, fmt.Errorf("failed to sign tree head: %w", err)
	}
	return head, nil
}

// openTree verifies a signed tree head and parses it. Every key of the set
// must have signed it: a head missing a signature would lock out the
// clients that know only that key.
func (ks keySet) openTree(head []byte) (tlog.Tree, error) {
	verifiers := make([]note.Verifier, len(ks))
	for i, k := range ks {
		verifiers[i] = k.verifier
	}
	n, err := note.Open(head, note.VerifierList(verifiers...))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("failed to verify signed tree head: %w", err)
	}
	for _, v := range verifiers {
		if !slices.ContainsFunc(n.Sigs, func(s note.Signature) bool { return s.Name == v.Name() && s.Hash == v.KeyHash() }) {
			return tlog.Tree{}, fmt.Errorf("signed tree head lacks a signature by %s+%08x", v.Name(), v.KeyHash())
		}
	}
	return tlog.ParseTree([]byte(n.Text))
}

// pick returns the keys of the stored signing set from the keys given,
// refusing a missing key (but lost) and a key the log does not sign with.
func pick(stored []string, given []*Key, lost string) (keySet, error) {
	for _, k := range given {
		if !slices.Contains(stored, k.VerifierKey()) {
			return nil, fmt.Errorf("%s is not one of the log's keys, which are %s (a retired key, or another log's): "+
				"serving a log under another key would break every client that knows it; pass the log's own keys, and add a key only with sumd key rotate", k.VerifierKey(), strings.Join(stored, ", "))
		}
	}
	return choose(stored, given, lost)
}

// choose returns the keys of the stored signing set from the keys given,
// which may hold more. The key lost (Options.LostKey), if not given, is
// taken as a verifier alone: enough to verify the stored head, and to
// retire it.
func choose(stored []string, given []*Key, lost string) (keySet, error) {
	var ks keySet
	for _, vkey := range stored {
		i := slices.IndexFunc(given, func(k *Key) bool { return k.VerifierKey() == vkey })
		switch {
		case i >= 0:
			ks = append(ks, given[i])
		case vkey == lost:
			k, err := lostKey(vkey)
			if err != nil {
				return nil, err
			}
			ks = append(ks, k)
		default:
			return nil, &MissingKeyError{VKey: vkey, Stored: stored}
		}
	}
	return ks, nil
}

// lostKey is the Key of a verifier key whose private key is lost: it
// verifies, and signs nothing.
func lostKey(vkey string) (*Key, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("malformed verifier key %q: %w", vkey, err)
	}
	return &Key{verifier: v, vkey: vkey}, nil
}

// VerifierKeys returns the verifier keys of every key the log signs with:
// one, or two during a key rotation. A mirror's are those it was opened
// with.
func (l *Log) VerifierKeys() []string {
	if l.origin != nil {
		return slices.Clone(l.originKeys)
	}
	return l.keys.Load().vkeys()
}

// AddKey starts a key rotation: from now on every tree head is signed by k
// too, beginning with the latest one, re-signed at once. k must be a new key
// for the same database name. Clients that know only the old key are not
// affected; publish the new verifier key, then RemoveKey the old one once
// every client knows the new one.
//
// A key RemoveKey retired is refused: it may have been retired because it
// leaked, and signing with it again would let its holder sign heads that
// the clients still pinned to it trust.
func (l *Log) AddKey(ctx context.Context, k *Key) error {
	return l.rotate(ctx, func(ctx context.Context, ks keySet) (keySet, error) {
		if k.Name() != ks.name() {
			return nil, fmt.Errorf("key %s is for %q, not this log %q", k.VerifierKey(), k.Name(), ks.name())
		}
		if slices.Contains(ks.vkeys(), k.VerifierKey()) {
			return nil, fmt.Errorf("the log already signs with %s", k.VerifierKey())
		}
		retired, err := l.retiredKeys(ctx)
		if err != nil {
			return nil, err
		}
		if slices.Contains(retired, k.VerifierKey()) {
			return nil, fmt.Errorf("%s was retired from this log (sumd key retire), perhaps because it leaked, and is never added back: "+
				"whoever holds a copy could sign heads that clients still pinned to it trust; rotate to a newly generated key instead", k.VerifierKey())
		}
		return append(slices.Clone(ks), k), nil
	})
}

// AuxRetiredKeys keeps the verifier keys RemoveKey retired, one a line,
// for AddKey to refuse: the key set stored with the head names only the
// keys signing now.
const AuxRetiredKeys = "tlog/retired-keys"

// retiredKeys returns the verifier keys recorded under AuxRetiredKeys;
// none in a store without auxiliary state.
func (l *Log) retiredKeys(ctx context.Context) ([]string, error) {
	a, ok := l.store.(AuxStore)
	if !ok {
		return nil, nil
	}
	v, err := a.Aux(ctx, AuxRetiredKeys)
	if err != nil {
		return nil, fmt.Errorf("failed to read the log's retired keys: %w", err)
	}
	return parseRetired(v)
}

// maxRetiredSize caps the value of AuxRetiredKeys, some ten thousand keys:
// a larger one is damage, not retirements.
const maxRetiredSize = 1 << 20

// parseRetired decodes a value of AuxRetiredKeys, as retiredValue writes
// it: each key canonical, once, on a line of its own. Anything else is
// damage (ErrCorrupt), reported rather than read as some other list, where
// a retired key no longer spelled as AddKey compares it would be taken
// back.
func parseRetired(v []byte) ([]string, error) {
	if len(v) == 0 {
		return nil, nil
	}
	if len(v) > maxRetiredSize {
		return nil, fmt.Errorf("%w: the retired keys (%s) are %d bytes, more than the limit of %d", ErrCorrupt, AuxRetiredKeys, len(v), maxRetiredSize)
	}
	if v[len(v)-1] != '\n' {
		return nil, fmt.Errorf("%w: the retired keys (%s) do not end in a newline", ErrCorrupt, AuxRetiredKeys)
	}
	keys := strings.Split(string(v[:len(v)-1]), "\n")
	for i, k := range keys {
		if err := canonicalVerifierKey(k); err != nil {
			return nil, fmt.Errorf("%w: line %d of the retired keys (%s): %v", ErrCorrupt, i+1, AuxRetiredKeys, err)
		}
		if slices.Contains(keys[:i], k) {
			return nil, fmt.Errorf("%w: line %d of the retired keys (%s) repeats %s", ErrCorrupt, i+1, AuxRetiredKeys, k)
		}
	}
	return keys, nil
}

// canonicalVerifierKey checks that vkey is a verifier key spelled as
// note.NewEd25519VerifierKey spells it, the only spelling Key.VerifierKey
// gives: note.NewVerifier also takes an upper-case key hash.
func canonicalVerifierKey(vkey string) error {
	if _, err := note.NewVerifier(vkey); err != nil {
		return fmt.Errorf("%.80q is not a verifier key: %w", vkey, err)
	}
	name, rest, _ := strings.Cut(vkey, "+")
	_, enc, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) != 1+ed25519.PublicKeySize {
		return fmt.Errorf("%.80q is not an Ed25519 verifier key", vkey)
	}
	want, err := note.NewEd25519VerifierKey(name, ed25519.PublicKey(key[1:]))
	if err != nil || want != vkey {
		return fmt.Errorf("%.80q is not spelled as sumd writes a verifier key (%s)", vkey, want)
	}
	return nil
}

// recordRetired adds vkey to the keys recorded under AuxRetiredKeys. It
// runs before the key set without vkey is written: a failure between
// leaves vkey recorded and still signing, which refuses only what AddKey
// refuses anyway, where the other order could leave it retired and
// unrecorded.
func (l *Log) recordRetired(ctx context.Context, vkey string) error {
	a, ok := l.store.(AuxStore)
	if !ok {
		return nil
	}
	retired, err := l.retiredKeys(ctx)
	if err != nil || slices.Contains(retired, vkey) {
		return err
	}
	if v := retiredValue(append(retired, vkey)); len(v) > maxRetiredSize {
		return fmt.Errorf("the log records %d retired keys, as many as it keeps (%d bytes)", len(retired), maxRetiredSize)
	}
	return l.writeFailure(a.SetAux(ctx, AuxRetiredKeys, retiredValue(append(retired, vkey))), "record the retired key "+vkey)
}

// retiredValue is the value of AuxRetiredKeys listing vkeys.
func retiredValue(vkeys []string) []byte {
	return []byte(strings.Join(vkeys, "\n") + "\n")
}

// RemoveKey ends a key rotation: tree heads are no longer signed by the key
// whose verifier key is vkey, beginning with the latest one. At least one
// key must remain. The key is recorded as retired (AuxRetiredKeys), so
// that AddKey never takes it back.
func (l *Log) RemoveKey(ctx context.Context, vkey string) error {
	return l.rotate(ctx, func(ctx context.Context, ks keySet) (keySet, error) {
		i := slices.IndexFunc(ks, func(k *Key) bool { return k.VerifierKey() == vkey })
		switch {
		case i < 0:
			return nil, fmt.Errorf("the log does not sign with %s (it signs with %s)", vkey, strings.Join(ks.vkeys(), ", "))
		case len(ks) == 1:
			return nil, errors.New("cannot remove the log's only key: add its successor first")
		}
		if err := l.recordRetired(ctx, vkey); err != nil {
			return nil, err
		}
		return slices.Delete(slices.Clone(ks), i, i+1), nil
	})
}

// rotate makes change(current set) the signing set and re-signs the
// published tree with it, in the sequencer: the head and the set change
// together, and the set change applies to the set current at that moment,
// so concurrent rotations never lose one.
func (l *Log) rotate(ctx context.Context, change func(context.Context, keySet) (keySet, error)) error {
	if l.keys.Load() == nil {
		return ErrVerifierOnly
	}
	return l.control(ctx, func(ctx context.Context) error {
		return l.retry(func() error {
			ks, err := change(ctx, *l.keys.Load())
			if err != nil {
				return err
			}
			n := l.pub.Load().Tree.N
			hashes := &tileReader{read: func(id TileID) ([]byte, error) { return l.committedTile(ctx, id, n) }}
			b, err := l.seal(ctx, n, hashes, nil, ks, ks.vkeys())
			if err == nil {
				err = l.write(ctx, b)
			}
			if err == nil {
				l.keys.Store(&ks)
				l.log.Warn("signing keys changed", "name", ks.name(), "vkeys", strings.Join(ks.vkeys(), " "), "tree_size", n)
			}
			return err
		})
	})
}

// A MissingKeyError is a log that signs with a key whose private key this
// process was not given: it was started without it, or another process
// sharing the database rotated it in (sumd key rotate) while it ran.
type MissingKeyError struct {
	VKey   string   // the key lacking
	Stored []string // every key the log signs with
}

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("the log signs with %s, whose private key was not given: pass every key of the log (%s)", e.VKey, strings.Join(e.Stored, ", "))
}

// Hint says what to do: most often a key file was left out, but one lost
// (rotated in, and never backed up) is retired with the others.
func (e *MissingKeyError) Hint() string {
	return fmt.Sprintf("pass -key with the key files of all of them (-key OLD,NEW); if the file of %s is lost, retire it with the others: "+
		"sumd key retire -key <their files> -retire %s (clients that pinned only that key then fail until they switch to a remaining one; docs/keys.md, Losing a key)", e.VKey, e.VKey)
}

// keysChangedError stops a log whose signing keys another process changed
// to a set this one cannot sign with. It is an ErrFatal, but not a storage
// failure, and restarting as before would only stop it again: its hint
// says what to restart with.
type keysChangedError struct{ missing *MissingKeyError }

func (e *keysChangedError) Error() string {
	return "log stopped: another process changed the keys it signs with: " + e.missing.Error()
}
func (e *keysChangedError) Unwrap() []error { return []error{ErrFatal, e.missing} }
func (e *keysChangedError) Hint() string {
	return "restart every sumd process on this database with the private keys of all of " + strings.Join(e.missing.Stored, ", ") +
		" (-key OLD,NEW; see docs/ha.md, Key rotation)"
}
