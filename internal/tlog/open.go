package tlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// open loads the log from the store (creating it if allowed and the store
// is empty), checks that the keys are the log's, verifies the stored tree
// against the signed head and publishes that head.
func (l *Log) open(ctx context.Context, opts Options) error {
	if err := l.parseKeys(opts); err != nil {
		return err
	}
	loaded := time.Now()
	st, err := l.store.Load(ctx)
	if errors.Is(err, ErrNoLog) && opts.Create {
		st, err = l.create(ctx)
	}
	if errors.Is(err, ErrNoLog) {
		return fmt.Errorf("%w (a new log is created only when asked to)", err)
	}
	if err != nil {
		return err
	}
	if len(st.Head) == 0 {
		st.Head = nil // a store may keep "no head" as an empty one
	}
	if err := l.checkMeta(st.Meta); err != nil {
		return err
	}
	l.storedKeys = st.Meta.VKeys
	tree, ks, err := l.openStoredHead(st)
	if ke := l.originKeyError("the held head", err); ke != nil {
		return ke
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if ks != nil {
		l.keys.Store(&ks)
	}
	start := time.Now()
	if err := l.verify(ctx, tree, opts, !st.Meta.Mirror); err != nil {
		return err
	}
	if !st.Meta.Mirror {
		openHead := func(head []byte) (tlog.Tree, error) {
			tree, _, err := l.openStoredHead(State{Meta: st.Meta, Head: head})
			return tree, err
		}
		if err := checkExtent(ctx, l.store, st.Head, tree, openHead); err != nil {
			return err
		}
		if err := checkLostHead(ctx, l.store, tree); err != nil {
			return err
		}
		if bs, ok := l.store.(*BoltStore); ok {
			// A write refused before it wrote (a low disk) costs only a
			// scan at the next open. Any other failure may have left a
			// commit visible that is not durable (PROTOCOL.md §6): as
			// for any commit, that is fatal, and reopening decides.
			err := bs.storeIndexed()
			if errors.Is(err, ErrNotPersisted) {
				l.log.Warn("failed to store the index's extent; opening this log will scan its index again", "err", err)
			} else if err != nil {
				return fmt.Errorf("failed to store the index's extent: %w", err)
			}
		}
	}
	l.log.Debug("opened checksum database", "name", l.name, "tree_size", tree.N, "verified", opts.Verify.String(), "duration", time.Since(start))
	l.publish(tree, st.Head, time.Time{})
	l.confirm(loaded)
	return nil
}

// verify verifies the stored tree against tree, the signed head's, as
// opts say, until opts.Stop is closed: whatever the verification met once
// stopped (a read cut short) says nothing of the database.
func (l *Log) verify(ctx context.Context, tree tlog.Tree, opts Options, dense bool) error {
	vctx, cancel := stopContext(ctx, opts.Stop)
	defer cancel()
	err := verify(vctx, l.store, tree, opts.Verify, dense)
	if err != nil && vctx.Err() != nil && ctx.Err() == nil {
		return ErrOpenStopped
	}
	return corrupt(err)
}

// stopContext returns ctx, also ended once stop is closed (nil: never).
func stopContext(ctx context.Context, stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	select {
	case <-stop: // closed already: no verification at all
		cancel()
	default:
		if stop != nil {
			go func() {
				select {
				case <-stop:
					cancel()
				case <-ctx.Done():
				}
			}()
		}
	}
	return ctx, cancel
}

// parseKeys takes the log's name and keys from the options.
func (l *Log) parseKeys(opts Options) error {
	if len(opts.Keys) > 0 {
		l.name = opts.Keys[0].Name()
		for _, k := range opts.Keys[1:] {
			if k.Name() != l.name {
				return fmt.Errorf("keys for two names, %q and %q: a log has one name", l.name, k.Name())
			}
		}
		return nil
	}
	for _, vkey := range opts.VerifierKeys {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return fmt.Errorf("malformed verifier key %q: %w", vkey, err)
		}
		if l.name == "" {
			l.name = v.Name()
		}
		if v.Name() != l.name {
			return fmt.Errorf("verifier keys for two names, %q and %q: a log has one name", l.name, v.Name())
		}
		l.origin = append(l.origin, v)
	}
	l.originKeys = slices.Clone(opts.VerifierKeys)
	return nil
}

// create stores a new log in an empty store: a primary's signed empty tree,
// or a mirror with no head. If another process created one first, its log
// is loaded instead.
func (l *Log) create(ctx context.Context) (State, error) {
	meta := Meta{Name: l.name, VKeys: l.originKeys, Mirror: l.origin != nil}
	var head []byte
	if l.origin == nil {
		ks := keySet(l.given)
		meta.VKeys = ks.vkeys()
		var err error
		if head, err = ks.signTree(emptyTree()); err != nil {
			return State{}, err
		}
	}
	err := l.store.Create(ctx, meta, head)
	switch {
	case errors.Is(err, ErrLogExists):
		return l.store.Load(ctx)
	case err != nil:
		return State{}, fmt.Errorf("failed to create the log: %w", err)
	}
	l.created = true
	// A new signing log where one was expected is how a lost database
	// shows (a -create left on may then fork): a warning. A new mirror is
	// routine (its first run, sumd restore's scratch copy of a -from URL)
	// and signs nothing: information.
	level := slog.LevelWarn
	if meta.Mirror {
		level = slog.LevelInfo
	}
	l.log.Log(ctx, level, "created a new checksum database", "name", meta.Name, "vkeys", strings.Join(meta.VKeys, " "), "mirror", meta.Mirror)
	return State{Meta: meta, Head: head}, nil
}

// An OtherLogError is the error of opening a primary's store with the
// signing key of another log.
type OtherLogError struct {
	Stored string // the name of the log the store holds
	Key    string // the name of the signing key given
}

func (e *OtherLogError) Error() string {
	return fmt.Sprintf("database holds the log %q but the signing key is for %q: use that log's key", e.Stored, e.Key)
}

// checkMeta refuses a store of another log, or of the other kind.
func (l *Log) checkMeta(m Meta) error {
	switch {
	case m.Mirror && l.origin == nil:
		return fmt.Errorf("database holds a mirror of %q: open it with the origin's verifier keys, not a signing key", m.Name)
	case !m.Mirror && l.origin != nil:
		return fmt.Errorf("database holds the log %q itself, not a mirror of it: open it with its signing keys", m.Name)
	case m.Name != l.name && l.origin != nil:
		return fmt.Errorf("database holds a mirror of %q but the verifier keys are for %q", m.Name, l.name)
	case m.Name != l.name:
		return &OtherLogError{Stored: m.Name, Key: l.name}
	}
	if l.origin == nil {
		_, err := pick(m.VKeys, l.given, l.lost)
		return err
	}
	return nil
}

// openStoredHead verifies a stored head and parses its tree. For a primary
// it returns the signing set the store lists, picked from the given keys,
// if it differs from the current one (or there is none yet); every key of
// the set must have signed the head. A mirror's head needs a signature by
// one of the origin's keys.
func (l *Log) openStoredHead(st State) (tlog.Tree, keySet, error) {
	if l.origin != nil {
		if st.Head == nil {
			if cur := l.pub.Load(); cur != nil && cur.Signed != nil {
				return tlog.Tree{}, nil, errors.New("the stored head vanished")
			}
			return emptyTree(), nil, nil
		}
		tree, err := l.openOrigin(st.Head)
		return tree, nil, err
	}
	if len(st.Head) == 0 {
		return tlog.Tree{}, nil, errors.New("the database holds no signed tree head: a copy into it (sumd copy) did not finish; run it again")
	}
	var ks keySet
	if cur := l.keys.Load(); cur == nil || !slices.Equal(cur.vkeys(), st.Meta.VKeys) {
		var err error
		if ks, err = choose(st.Meta.VKeys, l.given, l.lost); err != nil {
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

// openOrigin verifies a head signed by the origin of a mirror and parses
// its tree. One known signature suffices: clients pinned to the origin's
// keys check the rest.
func (l *Log) openOrigin(head []byte) (tlog.Tree, error) {
	n, err := note.Open(head, note.VerifierList(l.origin...))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("failed to verify the signed head with %s: %w", strings.Join(l.originKeys, ", "), err)
	}
	return tlog.ParseTree([]byte(n.Text))
}
