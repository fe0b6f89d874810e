package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
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
// not verify is a problem, and nothing else can be checked. A body that is
// not a signed note at all (a proxy's page) is no head: a failure to fetch.
func (r *run) checkHead(ctx context.Context) (bool, error) {
	msg, err := r.f.Latest(ctx)
	if err != nil {
		return false, err
	}
	tree, err := r.openHead(msg)
	if err != nil && !sumdbclient.IsNote(msg) {
		// Named by its type and length, not quoted: perhaps the answer
		// of a host a redirect led to, which only this auditor can
		// reach; a hostile database must not get it quoted in our logs.
		return false, fmt.Errorf("%w: fetch %s/latest to see them", sumdbclient.NotProtocol("/latest", "a signed note", msg, false), r.rep.URL)
	}
	if err != nil {
		r.found.add(Problem{Kind: KindSignature, Message: r.signatureMessage(err), Heads: []Head{{Role: roleServed, Note: string(msg)}}})
		return false, nil
	}
	r.head, r.tree = msg, tree
	r.useSigner(msg)
	r.rep.Tree = treeOf(tree)
	r.thr = tlog.TileHashReader(tree, r.tiles)
	r.passed(CheckSignature)
	return true, nil
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
func (r *run) signatureMessage(err error) string {
	return r.keys.Explain("/latest", r.opts.KeySource, err)
}

// checkConsistency proves that the tree served extends the head the
// previous run saved and the head the full audit was last checkpointed
// under, then saves the new head. A fork or a rollback is a problem; the
// new head is then not saved, so that every later run reports it again.
// Nor is a stale head (a prefix of one signed before), which is a warning:
// the newer stays saved.
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
				"the state is damaged or belongs to another database of that name; if this database signed it with a key since retired, "+
				"give that key as well, or move %s aside to audit afresh (with no saved head to detect a fork against)",
				filepath.Join(r.state.dir, latestFile), err, r.state.dir)
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
	if r.stale {
		return true, nil
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
	// or above if the saved head is the checkpoint's: stale, a rollback
	// or a fork.
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
		return r.prefixOf(old, oldMsg, heads)
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

// prefixOf sorts a served tree smaller than old, which the database
// signed before, by old's hash tiles, authenticated by old's head: if they
// prove r.tree a prefix of old, r.tree is stale, an older head such as a
// cache in front of the database may serve (a warning, and the run goes
// on without saving it); if they do not, or do not match old, it is a
// fork; a server that no longer has them (404) lost records, a rollback.
// Other failures to fetch them stop the audit, which concludes nothing.
// The empty tree is a prefix of every tree (checkTiles checked its hash),
// for which tlog.ProveTree has no proof: the log's first head, which a
// cache may still serve, is stale too.
func (r *run) prefixOf(old tlog.Tree, oldMsg []byte, heads []Head) (bool, error) {
	var proof tlog.TreeProof
	var err error
	if r.tree.N > 0 {
		proof, err = tlog.ProveTree(old.N, r.tree.N, tlog.TileHashReader(old, r.tiles))
	}
	switch {
	case err == nil && (r.tree.N == 0 || tlog.CheckTree(proof, old.N, old.Hash, r.tree.N, r.tree.Hash) == nil):
		if old.N > r.newerTree.N {
			r.newer, r.newerTree = oldMsg, old
		}
		if !r.stale { // once, if both the saved head and the checkpoint's are newer
			r.stale = true
			r.rep.Warnings = append(r.rep.Warnings, Problem{Kind: KindStale, Heads: heads, Message: fmt.Sprintf(
				"stale: /latest serves the tree of %d records, a prefix of the tree of %d records the database signed before: "+
					"an older head, as a cache in front of the database may serve; the newer stays saved and the tree served is checked",
				r.tree.N, old.N)})
		}
		return true, nil
	case err == nil:
		r.found.add(Problem{Kind: KindFork, Heads: heads, Message: fmt.Sprintf(
			"SECURITY ERROR: fork: the database now signs a tree of %d records, which is not a prefix of the tree of %d records "+
				"it signed before: its history is inconsistent", r.tree.N, old.N)})
	case sumdbclient.NotFound(err):
		r.found.add(Problem{Kind: KindRollback, Heads: heads, Message: fmt.Sprintf(
			"SECURITY ERROR: rollback: the database now signs a tree of %d records, smaller than the tree of %d records "+
				"it signed before, whose hash tiles it no longer serves (%s); a log only grows, "+
				"so it lost records or shows different clients different histories", r.tree.N, old.N, quote(err.Error()))})
	case isFetchError(err):
		return false, err
	default:
		r.found.add(Problem{Kind: KindFork, Heads: heads, Message: fmt.Sprintf(
			"SECURITY ERROR: fork: the database now signs a tree of %d records, and the hash tiles it serves for the tree "+
				"of %d records it signed before do not match that tree (%s): its history is inconsistent", r.tree.N, old.N, quote(err.Error()))})
	}
	return false, nil
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
