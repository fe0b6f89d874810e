package tlog

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// A ForkError says that tree Big does not extend tree Small: the two
// cannot be part of one consistent history. Whoever signed both forked or
// rolled back its log.
type ForkError struct {
	Big, Small tlog.Tree
	// Proof is why the consistency proof failed; nil for two trees of one
	// size, or a Big smaller than Small.
	Proof error
}

func (e *ForkError) Error() string {
	switch {
	case e.Big.N < e.Small.N:
		return fmt.Sprintf("the tree of %d records is smaller than the tree of %d records", e.Big.N, e.Small.N)
	case e.Proof == nil:
		return fmt.Sprintf("two different trees of %d records (hashes %s and %s)", e.Big.N, e.Small.Hash, e.Big.Hash)
	}
	return fmt.Sprintf("the tree of %d records does not contain the tree of %d records: %v", e.Big.N, e.Small.N, e.Proof)
}

func (e *ForkError) Unwrap() error { return e.Proof }

// ProveExtends proves that tree big extends tree small from hashes, which
// must authenticate to big (a log's own tiles, or a tlog.TileHashReader
// over fetched ones). Every tree extends the empty one (whatever hash the
// caller gives it: check it first if it came from outside); two trees of
// one size must be the same tree; a smaller tree extends no larger one.
// It returns a *ForkError if big does not extend small, and the error of
// hashes unchanged (a *readError stays one) if the proof cannot be built:
// a tile missing, unreadable, or not authentic is not evidence of a fork.
func ProveExtends(big, small tlog.Tree, hashes tlog.HashReader) error {
	switch {
	case big.N < small.N:
		return &ForkError{Big: big, Small: small}
	case small.N == 0:
		return nil
	case big.N == small.N:
		if big.Hash != small.Hash {
			return &ForkError{Big: big, Small: small}
		}
		return nil
	}
	proof, err := tlog.ProveTree(big.N, small.N, hashes)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(proof, big.N, big.Hash, small.N, small.Hash); err != nil {
		return &ForkError{Big: big, Small: small, Proof: err}
	}
	return nil
}
