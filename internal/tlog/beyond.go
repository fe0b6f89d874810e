package tlog

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// A BeyondHeadError says a primary's store holds data its signed head does
// not cover: records, index entries or tiles of a larger tree. A commit
// writes them with the head that covers them, in one transaction, so the
// head was rolled back (an UPDATE, an old backup of one table, an
// asynchronous failover mixed with newer data) or deleted and re-created
// behind the log's back. Signing on top of it would overwrite records that
// clients were given and fork the log they saw: Open refuses, and
// restarting does not help.
//
// (A mirror's store is not checked: its staging legitimately leaves
// verified data beyond its head, and it signs nothing.)
type BeyondHeadError struct {
	Tree  int64    // the signed head's tree size
	Found []string // what lies beyond it
}

func (e *BeyondHeadError) Error() string {
	return fmt.Sprintf("the database holds data beyond its signed tree of %d records (%s): its head was rolled back or replaced behind sumd's back (or a sumd copy into it was cut short)",
		e.Tree, strings.Join(e.Found, "; "))
}

// Is makes it an ErrCorrupt.
func (e *BeyondHeadError) Is(target error) bool { return target == ErrCorrupt }

// Hint says what to do, and not to restart.
func (e *BeyondHeadError) Hint() string {
	return "do NOT restart sumd on this database, and do not re-create it: clients may hold signed heads of the larger tree, " +
		"and a log signing on top of this head would fork it. Find out what happened to the database " +
		"(docs/ha.md, the asynchronous-failover row), then restore it from a mirror (docs/mirrors.md, \"Restore from a mirror\"); " +
		"if an interrupted sumd copy wrote it, run that copy again"
}

// checkExtent refuses a primary's store holding data beyond the tree of
// its signed head. The store reads its extent with the head stored at that
// moment: if another writer of a shared store committed since the head
// being opened was loaded, that newer head (opened with openHead, which
// verifies it) is the bound.
func checkExtent(ctx context.Context, s Store, head []byte, tree tlog.Tree, openHead func([]byte) (tlog.Tree, error)) error {
	e, err := s.Extent(ctx)
	if err != nil {
		return fmt.Errorf("failed to read how far the stored data reaches: %w", err)
	}
	if len(e.Head) > 0 && !bytes.Equal(e.Head, head) {
		newer, err := openHead(e.Head)
		if err != nil {
			return fmt.Errorf("the head changed while the database was opened, to one that does not verify: %w", err)
		}
		if newer.N > tree.N {
			tree = newer
		}
	}
	if found := beyond(e, tree.N); len(found) > 0 {
		return &BeyondHeadError{Tree: tree.N, Found: found}
	}
	return nil
}

// Reach is the size of the smallest tree that explains all the data of e:
// its records, the records its index entries name, and its tiles (a level-L
// tile N of W hashes covers (N·256+W)·256^L records). A store whose Reach
// exceeds its signed tree once signed a larger one, or is an unfinished
// copy.
func (e Extent) Reach() int64 {
	n := max(e.Records, e.Indexed)
	for _, t := range e.Tiles {
		covered := t.N*tileWidthMax + int64(t.W)
		for range t.L {
			if covered > math.MaxInt64/tileWidthMax {
				covered = math.MaxInt64 // no tree is that large
				break
			}
			covered *= tileWidthMax
		}
		n = max(n, covered)
	}
	return n
}

// tileWidthMax is the number of hashes of a full tile.
const tileWidthMax = 1 << tileHeight

// beyond lists what e holds beyond the tree of size n.
func beyond(e Extent, n int64) []string {
	var found []string
	if e.Records > n {
		found = append(found, fmt.Sprintf("records up to id %d", e.Records-1))
	}
	if e.Indexed > n {
		found = append(found, fmt.Sprintf("index entries naming records up to id %d", e.Indexed-1))
	}
	for _, t := range e.Tiles {
		if w := tileWidth(t.TileID, n); t.W > w {
			found = append(found, fmt.Sprintf("tile %d/%d with %d hashes, of which the tree has %d", t.L, t.N, t.W, w))
		}
	}
	return found
}

// rolledBackError stops a log whose store holds a head that does not
// extend the published one (*ForkError): the database was rolled back or
// replaced. It is an ErrFatal, but restarting would open the store at that
// head and sign on top of it, overwriting records clients were given: its
// hint says not to.
type rolledBackError struct{ err error }

func (e *rolledBackError) Error() string { return e.err.Error() }
func (e *rolledBackError) Unwrap() error { return e.err }
func (e *rolledBackError) Hint() string {
	return "do NOT start sumd serve again on this database: it no longer holds the tree this process published, " +
		"so its head was rolled back or replaced (docs/ha.md, the asynchronous-failover row). Find out what clients saw, " +
		"then restore the database from a mirror (docs/mirrors.md, \"Restore from a mirror\")"
}

// AuxLostHead keeps, in a shared store, the signed head a process had
// published when it found that the store no longer holds a tree extending
// it (rememberLost): a failover to a standby that lacked the last commits
// leaves no other trace of them. A shared store's Load returns it
// (State.Lost), so that the other processes stop too: one that had not
// adopted the lost head would sign trees of its size with other records.
const AuxLostHead = "tlog/lost-head"

// rememberLost records cur, the published head, in the store before the
// log stops on a store whose head does not extend it: the process stops,
// but a supervisor restarts it (or another process starts), and Open would
// then take the older head for the log's and sign trees of the lost one's
// size with other records, forking every client that saw it. Open refuses
// a primary's store whose head does not extend the recorded one
// (checkLostHead). A larger head another process recorded is kept. A
// failure is logged: the log stops either way.
func (l *Log) rememberLost(ctx context.Context, cur *Head) {
	a, ok := l.store.(AuxStore)
	if !ok || l.origin != nil || cur.Signed == nil {
		return
	}
	if v, err := a.Aux(ctx, AuxLostHead); err == nil && v != nil && HeadTree(v).N >= cur.Tree.N {
		return
	}
	if err := a.SetAux(ctx, AuxLostHead, cur.Signed); err != nil {
		l.log.Error("failed to record the published head the database lost: a process started on it will not know of it", "err", err, "tree_size", cur.Tree.N)
	}
}

// A LostHeadError is Open's refusal of a primary's store whose head does
// not extend one a process published (recorded by rememberLost), and the
// reason a running log stops on such a store (checkLost): the database
// lost commits (a failover to a standby that lacked them, a restore from
// an older backup) that clients may have seen.
type LostHeadError struct {
	Tree, Lost int64 // the stored head's tree size, the lost head's
	Err        error // why the one does not extend the other (a *ForkError)
}

func (e *LostHeadError) Error() string {
	return fmt.Sprintf("the database's signed tree of %d records does not extend the tree of %d records a sumd process published on it (it stopped when it found it rolled back): %v",
		e.Tree, e.Lost, e.Err)
}

// Is makes it an ErrCorrupt.
func (e *LostHeadError) Is(target error) bool { return target == ErrCorrupt }
func (e *LostHeadError) Unwrap() error        { return e.Err }

// Hint says not to force it open.
func (e *LostHeadError) Hint() string {
	return "do NOT start sumd serve again on this database as it is: clients may hold signed heads of the lost tree, and a log signing on top of this one would fork it. " +
		"Restore the database from a mirror that holds the lost tree (docs/mirrors.md, \"Restore from a mirror\"); it then opens. " +
		"Only if no client can have seen the lost tree, delete its record: DELETE FROM sumd_aux WHERE key = '" + AuxLostHead + "' (docs/ha.md)"
}

// checkLostHead refuses a primary's store whose head, of tree, does not
// extend the lost head a process recorded in it (rememberLost).
func checkLostHead(ctx context.Context, s Store, tree tlog.Tree) error {
	return CheckLostHead(ctx, s, tree, storeTiles(ctx, s, tree.N))
}

// ParseHeadTree parses the tree of a signed head without checking its
// signatures: the text before the blank line that starts them (all of it
// if there is none) must be a tree. It is for a head whose signatures
// were checked before, or whose size is only reported or checked again
// later.
func ParseHeadTree(head []byte) (tlog.Tree, error) {
	return tlog.ParseTree(headText(head))
}

// HeadTree is ParseHeadTree for a head whose signatures were checked
// before it was stored (a Store's, the lost head's record); zero for none.
func HeadTree(head []byte) tlog.Tree {
	tree, _ := ParseHeadTree(head) // zero on error
	return tree
}

// checkLost stops a primary's log whose store, as Load read it (st), holds
// a head of a smaller tree than a head some process published and recorded
// as lost (State.Lost): this process had not adopted that head, and the
// store's head does not extend it, so signing on top of it would fork it.
func (l *Log) checkLost(st State) error {
	if l.origin != nil || st.Lost == nil {
		return nil
	}
	stored, lost := HeadTree(st.Head), HeadTree(st.Lost)
	if stored.N >= lost.N {
		return nil // restored to it or beyond (Open checks that it extends it)
	}
	return l.stop(&LostHeadError{Tree: stored.N, Lost: lost.N, Err: &ForkError{Big: stored, Small: lost}})
}
