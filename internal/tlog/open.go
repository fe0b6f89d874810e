package tlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// open loads the log from the store (creating it if allowed and the store
// is empty), checks that the keys are the log's, verifies the stored tree
// against the signed head and publishes that head.
func (l *Log) open(ctx context.Context, opts Options) error {
	if err := l.parseKeys(opts); err != nil {
		return err
	}
	st, err := l.store.Load(ctx)
	if errors.Is(err, ErrNoLog) && opts.Create {
		st, err = l.create(ctx)
	}
	if errors.Is(err, ErrNoLog) {
		return fmt.Errorf("%w (a new log is created only with Options.Create)", err)
	}
	if err != nil {
		return err
	}
	if err := l.checkMeta(st.Meta); err != nil {
		return err
	}
	tree, ks, err := l.openStoredHead(st)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if ks != nil {
		l.keys.Store(&ks)
	}
	start := time.Now()
	if err := verify(ctx, l.store, tree, opts.Verify, !st.Meta.Mirror); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	l.log.Debug("opened checksum database", "name", l.name, "tree_size", tree.N, "verified", opts.Verify.String(), "duration", time.Since(start))
	l.publish(tree, st.Head, time.Time{})
	return nil
}

// parseKeys takes the log's name and keys from the options.
func (l *Log) parseKeys(opts Options) error {
	l.name = opts.Keys[0].Name()
	for _, k := range opts.Keys[1:] {
		if k.Name() != l.name {
			return fmt.Errorf("keys for two names, %q and %q: a log has one name", l.name, k.Name())
		}
	}
	return nil
}

// create stores a new log, with its signed empty tree, in an empty store.
// If another process created one first, its log is loaded instead.
func (l *Log) create(ctx context.Context) (State, error) {
	ks := keySet(l.given)
	meta := Meta{Name: l.name, VKeys: ks.vkeys()}
	head, err := ks.signTree(emptyTree())
	if err != nil {
		return State{}, err
	}
	err = l.store.Create(ctx, meta, head)
	switch {
	case errors.Is(err, ErrLogExists):
		return l.store.Load(ctx)
	case err != nil:
		return State{}, fmt.Errorf("failed to create the log: %w", err)
	}
	l.log.Warn("created a new checksum database", "name", meta.Name, "vkeys", strings.Join(meta.VKeys, " "))
	return State{Meta: meta, Head: head}, nil
}

// checkMeta refuses a store of another log, or a mirror's.
func (l *Log) checkMeta(m Meta) error {
	switch {
	case m.Mirror:
		return fmt.Errorf("database holds a mirror of %q, not a log to sign", m.Name)
	case m.Name != l.name:
		return fmt.Errorf("database holds the log %q but the signing key is for %q: use that log's key", m.Name, l.name)
	}
	_, err := pick(m.VKeys, l.given)
	return err
}

// openStoredHead verifies a stored head and parses its tree. It returns
// the signing set the store lists, picked from the given keys, if it
// differs from the current one (or there is none yet); every key of the set
// must have signed the head.
func (l *Log) openStoredHead(st State) (tlog.Tree, keySet, error) {
	var ks keySet
	if cur := l.keys.Load(); cur == nil || !slices.Equal(cur.vkeys(), st.Meta.VKeys) {
		var err error
		if ks, err = choose(st.Meta.VKeys, l.given); err != nil {
			return tlog.Tree{}, nil, err
		}
	}
	use := ks
	if use == nil {
		use = *l.keys.Load()
	}
	tree, err := use.openTree(st.Head)
	return tree, ks, err
}
