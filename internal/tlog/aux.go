package tlog

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// errNoAux is the answer of Aux and SetAux when the store keeps no
// auxiliary state.
var errNoAux = errors.New("the log's store keeps no auxiliary state")

// Aux returns the value stored under key by SetAux, or nil if there is none.
func (l *Log) Aux(ctx context.Context, key string) ([]byte, error) {
	a, ok := l.store.(AuxStore)
	if !ok {
		return nil, errNoAux
	}
	return a.Aux(ctx, key)
}

// SetAux durably stores value under key, from the sequencer: in bbolt it
// shares the file with the log, so its write is one of the log's, and a
// failure that leaves it unknown whether it was stored stops the log too.
func (l *Log) SetAux(ctx context.Context, key string, value []byte) error {
	a, ok := l.store.(AuxStore)
	if !ok {
		return errNoAux
	}
	if len(value) > MaxAuxSize {
		return fmt.Errorf("auxiliary value %q is %d bytes, more than the limit of %d", key, len(value), MaxAuxSize)
	}
	return l.control(ctx, func(ctx context.Context) error {
		return l.writeFailure(a.SetAux(ctx, key, value), fmt.Sprintf("store %q", key))
	})
}

// CheckLostHead refuses tree, whose hashes reads, with a *LostHeadError
// if it does not extend the head a process published and recorded as lost
// in s (AuxLostHead, by rememberLost): the head s serves (Open), or a
// tree that is to replace s's log (a copy into it, a restore of it), since
// the record is the only trace of the lost commits, which clients may have
// seen. The record is not verified: it only ever refuses.
func CheckLostHead(ctx context.Context, s Store, tree tlog.Tree, hashes tlog.HashReader) error {
	a, ok := s.(AuxStore)
	if !ok {
		return nil
	}
	v, err := a.Aux(ctx, AuxLostHead)
	if err != nil {
		return fmt.Errorf("failed to read the record of a lost head: %w", err)
	}
	if v == nil {
		return nil
	}
	lost := HeadTree(v)
	if err := ProveExtends(tree, lost, hashes); err != nil {
		var fork *ForkError
		if !errors.As(err, &fork) {
			return fmt.Errorf("failed to check the tree against the lost head a process recorded: %w", err)
		}
		return &LostHeadError{Tree: tree.N, Lost: lost.N, Err: err}
	}
	return nil
}
