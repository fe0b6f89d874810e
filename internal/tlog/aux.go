package tlog

import (
	"context"
	"errors"
	"fmt"
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
