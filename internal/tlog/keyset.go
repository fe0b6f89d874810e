package tlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/bbolt"
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

// signTree signs tree with every key of the set.
func (ks keySet) signTree(tree tlog.Tree) ([]byte, error) {
	signers := make([]note.Signer, len(ks))
	for i, k := range ks {
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
// refusing a missing key and a key the log does not sign with.
func pick(stored []string, given []*Key) (keySet, error) {
	for _, k := range given {
		if !slices.Contains(stored, k.VerifierKey()) {
			return nil, fmt.Errorf("database was created with verifier key %s, not %s: serving a log under another key would break every client that knows it; "+
				"use the log's own key (to add a key, rotate it)", strings.Join(stored, ", "), k.VerifierKey())
		}
	}
	var ks keySet
	for _, vkey := range stored {
		i := slices.IndexFunc(given, func(k *Key) bool { return k.VerifierKey() == vkey })
		if i < 0 {
			return nil, fmt.Errorf("the log signs with %s, whose private key was not given: pass every key of the log (%s)", vkey, strings.Join(stored, ", "))
		}
		ks = append(ks, given[i])
	}
	return ks, nil
}

// storedVKeys returns the verifier keys the log signs with.
func storedVKeys(b buckets) []string {
	if v := b.meta.Get(keyVKeys); v != nil {
		return strings.Split(string(v), "\n")
	}
	return []string{string(b.meta.Get(keyVKey))}
}

// VerifierKeys returns the verifier keys of every key the log signs with:
// one, or two during a key rotation.
func (l *Log) VerifierKeys() []string { return l.keys.Load().vkeys() }

// AddKey starts a key rotation: from now on every tree head is signed by k
// too, beginning with the latest one, re-signed at once. k must be a new key
// for the same database name. Clients that know only the old key are not
// affected; publish the new verifier key, then RemoveKey the old one once
// every client knows the new one.
func (l *Log) AddKey(ctx context.Context, k *Key) error {
	ks := *l.keys.Load()
	if k.Name() != ks.name() {
		return fmt.Errorf("key %s is for %q, not this log %q", k.VerifierKey(), k.Name(), ks.name())
	}
	if slices.Contains(ks.vkeys(), k.VerifierKey()) {
		return fmt.Errorf("the log already signs with %s", k.VerifierKey())
	}
	return l.resign(ctx, append(slices.Clone(ks), k))
}

// RemoveKey ends a key rotation: tree heads are no longer signed by the key
// whose verifier key is vkey, beginning with the latest one. At least one
// key must remain.
func (l *Log) RemoveKey(ctx context.Context, vkey string) error {
	ks := *l.keys.Load()
	i := slices.IndexFunc(ks, func(k *Key) bool { return k.VerifierKey() == vkey })
	switch {
	case i < 0:
		return fmt.Errorf("the log does not sign with %s (it signs with %s)", vkey, strings.Join(ks.vkeys(), ", "))
	case len(ks) == 1:
		return errors.New("cannot remove the log's only key: add its successor first")
	}
	return l.resign(ctx, slices.Delete(slices.Clone(ks), i, i+1))
}

// resign makes ks the signing set and re-signs the latest tree with it, in
// one transaction run by the sequencer: the head and the set must change
// together, and only the sequencer writes heads.
func (l *Log) resign(ctx context.Context, ks keySet) error {
	return l.control(ctx, func(tx *bbolt.Tx) (func(), error) {
		b, err := openBuckets(tx)
		if err != nil {
			return nil, err
		}
		head, err := ks.signTree(l.tree)
		if err != nil {
			return nil, err
		}
		if err := b.meta.Put(keyVKeys, []byte(strings.Join(ks.vkeys(), "\n"))); err != nil {
			return nil, fmt.Errorf("failed to store signing keys: %w", err)
		}
		if err := b.meta.Put(keyHead, head); err != nil {
			return nil, fmt.Errorf("failed to store tree head: %w", err)
		}
		l.log.Warn("signing keys changed", "name", ks.name(), "vkeys", strings.Join(ks.vkeys(), " "), "tree_size", l.tree.N)
		return func() { l.keys.Store(&ks) }, nil
	})
}
