package tlog

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"
)

// bucketAux holds state that components beside the log keep with it (OCI
// sync's progress), so that one database file is the whole of a sumd
// instance. It is not part of the tree, never signed, and never served.
var bucketAux = []byte("aux")

// MaxAuxSize caps one auxiliary value.
const MaxAuxSize = 64 << 20

// Aux returns the value stored under key by SetAux, or nil if there is none.
func (l *Log) Aux(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := l.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketAux); b != nil {
			v = append([]byte(nil), b.Get([]byte(key))...)
		}
		return nil
	})
	if len(v) == 0 {
		v = nil
	}
	return v, err
}

// SetAux durably stores value under key, in a sequencer transaction of its
// own: the sequencer stays the only writer of the database.
func (l *Log) SetAux(ctx context.Context, key string, value []byte) error {
	if len(value) > MaxAuxSize {
		return fmt.Errorf("auxiliary value %q is %d bytes, more than the limit of %d", key, len(value), MaxAuxSize)
	}
	return l.control(ctx, func(tx *bbolt.Tx) (func(), error) {
		b, err := tx.CreateBucketIfNotExists(bucketAux)
		if err != nil {
			return nil, fmt.Errorf("failed to create auxiliary bucket: %w", err)
		}
		if err := b.Put([]byte(key), value); err != nil {
			return nil, fmt.Errorf("failed to store %q: %w", key, err)
		}
		return func() {}, nil
	})
}
