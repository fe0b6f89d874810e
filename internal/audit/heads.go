package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// Roles of the heads quoted in a Problem.
const (
	roleServed  = "served now"
	roleSaved   = "saved by the previous run"
	roleAudited = "under which the audited records were checked"
)

// parseKeys parses the verifier keys, which must name one database, and
// uses the first until checkHead has seen which signed the head.
func (r *run) parseKeys(vkeys []string) error {
	keys, err := sumdbclient.ParseVerifiers(vkeys...)
	if err != nil {
		return err
	}
	r.keys, r.vkey = keys, keys.Keys()[0]
	return nil
}

// useSigner makes the first key that signed msg the one lookups verify
// with: sumdb.Client takes one key.
func (r *run) useSigner(msg []byte) { r.vkey = r.keys.Signer(msg) }

// checkHead fetches /latest and verifies its signature. A head that does
// not verify is a problem, and nothing else can be checked.
func (r *run) checkHead(ctx context.Context) (bool, error) {
	msg, err := r.f.Latest(ctx)
	if err != nil {
		return false, err
	}
	tree, err := r.openHead(msg)
	if err != nil {
		p := Problem{Kind: KindSignature, Message: r.signatureMessage(err), Heads: []Head{{Role: roleServed, Note: string(msg)}}}
		if !isNote(msg) {
			// Not the database's head at all: perhaps the answer of a host
			// a redirect led to, which only this auditor can reach; a
			// hostile database must not get it quoted in our logs.
			p.Heads = nil
			p.Message += fmt.Sprintf("; the %d bytes served are not a signed note, so they are not quoted: fetch %s/latest to see them",
				len(msg), r.rep.URL)
		}
		r.found.add(p)
		return false, nil
	}
	r.head, r.tree = msg, tree
	r.useSigner(msg)
	r.rep.Tree = treeOf(tree)
	r.thr = tlog.TileHashReader(tree, r.tiles)
	r.passed(CheckSignature)
	return true, nil
}

// isNote reports whether msg is a signed note, whoever signed it.
func isNote(msg []byte) bool {
	_, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	return errors.As(err, &unverified)
}

// openHead verifies a signed tree head with the key and parses it.
func (r *run) openHead(msg []byte) (tlog.Tree, error) { return r.keys.Open(msg) }

// openSaved verifies a head read from the state directory: with the keys
// given or with a key the state remembers having verified a head with (the
// database's old key, after a key rotation).
func (r *run) openSaved(msg []byte) (tlog.Tree, error) {
	remembered, err := r.state.rememberedKeys()
	if err != nil {
		return tlog.Tree{}, err
	}
	vkeys := r.keys.Keys()
	for _, vkey := range remembered {
		if v, err := note.NewVerifier(vkey); err == nil && v.Name() == r.keys.Name() {
			vkeys = append(vkeys, vkey)
		}
	}
	keys, err := sumdbclient.ParseVerifiers(vkeys...) // valid keys of one database: cannot fail
	if err != nil {
		return tlog.Tree{}, err
	}
	return keys.Open(msg)
}

// signatureMessage explains why /latest did not verify.
func (r *run) signatureMessage(err error) string { return r.keys.Explain("/latest", "-key", err) }

// checkConsistency proves that the tree served extends the head the
// previous run saved and the head the full audit was last checkpointed
// under, then saves the new head. A fork or a rollback is a problem; the
// new head is then not saved, so that every later run reports it again.
// Every check that can refuse the new head runs before it is saved: the
// checkpoint's is the only one left when the saved head was lost, and a
// bad head saved would be the truth the next run checks against.
func (r *run) checkConsistency(ctx context.Context) (bool, error) {
	if r.state == nil {
		return true, nil
	}
	saved, err := r.state.latest()
	if err != nil {
		return false, err
	}
	if saved != nil {
		old, err := r.openSaved(saved)
		if err != nil {
			return false, fmt.Errorf("the head saved in %s does not verify with the keys given or those that verified it before (%w): "+
				"the state is damaged or belongs to another database of that name", filepath.Join(r.state.dir, latestFile), err)
		}
		r.rep.Previous = treeOf(old)
		if ok, err := r.extends(old, saved, roleSaved); err != nil || !ok {
			return ok, err
		}
	}
	if ok, err := r.checkCheckpoint(saved); err != nil || !ok {
		return ok, err
	}
	if saved != nil || r.resumeFrom != nil {
		r.passed(CheckConsistency)
	}
	if err := r.state.rememberKeys(r.keys.Signers(r.head)); err != nil {
		return false, err
	}
	return true, r.state.saveLatest(r.head)
}

// checkCheckpoint proves that the tree served extends the head of the full
// audit's last checkpoint, and first that the records audited are still
// its first ones. Once they are, it keeps the checkpoint's frontier in
// r.resumeFrom for the full audit to resume from.
func (r *run) checkCheckpoint(saved []byte) (bool, error) {
	cp, err := r.state.checkpoint()
	if err != nil || cp == nil {
		return err == nil, err
	}
	under, err := r.openSaved(cp.head)
	if err != nil || cp.frontier.size > under.N {
		return false, fmt.Errorf("the audit checkpoint in %s is damaged (head: %v, size %d): move the state directory aside and audit again",
			r.state.dir, err, cp.frontier.size)
	}
	heads := []Head{{Role: roleAudited, Note: string(cp.head)}, {Role: roleServed, Note: string(r.head)}}
	// A tree smaller than the audited records is left to extends, below,
	// as the rollback it is.
	if cp.frontier.size <= r.tree.N {
		want, err := tlog.TreeHash(cp.frontier.size, r.thr)
		if err != nil {
			return r.tileProblem(err)
		}
		if got := cp.frontier.root(); got != want {
			r.found.add(Problem{Kind: KindFork, Heads: heads,
				Message: fmt.Sprintf("SECURITY ERROR: fork: the first %d records, audited before, hashed to %s; the database's tree now says %s: "+
					"its history changed", cp.frontier.size, got, want)})
			return false, nil
		}
	}
	if !bytes.Equal(cp.head, saved) { // the saved head, if the same, was proven above
		if ok, err := r.extends(under, cp.head, roleAudited); err != nil || !ok {
			return ok, err
		}
	}
	r.resumeFrom = cp.frontier
	return true, nil
}

// emptyTreeHash is the hash of the tree of no records (RFC 6962).
var emptyTreeHash = tlog.Hash(sha256.Sum256(nil))

// extends checks that r.tree contains old, whose signed head is oldMsg.
func (r *run) extends(old tlog.Tree, oldMsg []byte, role string) (bool, error) {
	heads := []Head{{Role: role, Note: string(oldMsg)}, {Role: roleServed, Note: string(r.head)}}
	switch {
	case old.N > r.tree.N:
		r.found.add(Problem{Kind: KindRollback, Heads: heads, Message: fmt.Sprintf(
			"SECURITY ERROR: rollback: the database now signs a tree of %d records, smaller than the tree of %d records "+
				"it signed before; a log only grows, so it lost records or shows different clients different histories",
			r.tree.N, old.N)})
		return false, nil
	case old.N == r.tree.N:
		if old.Hash != r.tree.Hash {
			r.found.add(Problem{Kind: KindFork, Heads: heads, Message: fmt.Sprintf(
				"SECURITY ERROR: fork: the database has signed two different trees of %d records (hashes %s and %s): "+
					"its history is inconsistent", old.N, old.Hash, r.tree.Hash)})
			return false, nil
		}
		return true, nil
	case old.N == 0:
		// Every tree contains the empty one, for which tlog.ProveTree has
		// no proof: its hash is checked by the case above when the log is
		// still empty, and must be SHA-256 of nothing.
		if old.Hash != emptyTreeHash {
			r.found.add(Problem{Kind: KindFork, Heads: heads, Message: fmt.Sprintf(
				"SECURITY ERROR: fork: the database signed an empty tree with hash %s, not %s", old.Hash, emptyTreeHash)})
			return false, nil
		}
		return true, nil
	}
	proof, err := tlog.ProveTree(r.tree.N, old.N, r.thr)
	if err != nil {
		return r.tileProblem(err)
	}
	if tlog.CheckTree(proof, r.tree.N, r.tree.Hash, old.N, old.Hash) != nil {
		r.found.add(Problem{Kind: KindFork, Heads: heads, Message: r.forkMessage(old)})
		return false, nil
	}
	return true, nil
}

// forkMessage explains a failed consistency proof, with the hash the new
// tree gives its first old.N records, from tiles authenticated by the new
// head: together with the two heads, the evidence of the fork.
func (r *run) forkMessage(old tlog.Tree) string {
	msg := fmt.Sprintf("SECURITY ERROR: fork: the tree of %d records the database signs now does not contain "+
		"the tree of %d records it signed before: its history is inconsistent", r.tree.N, old.N)
	if h, err := tlog.TreeHash(old.N, r.thr); err == nil {
		msg += fmt.Sprintf("; by its current tiles its first %d records hash to %s, but the earlier head says %s", old.N, h, old.Hash)
	}
	return msg
}
