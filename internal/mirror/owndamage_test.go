package mirror

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// damagingStore is a memory store whose level-0 hash tiles read back with
// a bit flipped while damaged is set: a mirror's own database damaged on
// disk.
type damagingStore struct {
	*itlog.MemStore
	damaged atomic.Bool
}

func (s *damagingStore) ReadTiles(ctx context.Context, ids []itlog.TileID) ([][]byte, error) {
	out, err := s.MemStore.ReadTiles(ctx, ids)
	if err != nil || !s.damaged.Load() {
		return out, err
	}
	for i, id := range ids {
		if id.L == 0 && len(out[i]) > 0 {
			out[i] = slices.Clone(out[i])
			out[i][0] ^= 1
		}
	}
	return out, nil
}

// TestOwnDamageIsNoFork: a mirror proves an origin's older head a prefix
// of its own tree from its own hash tiles. When those tiles are damaged
// the proof fails, and that is the mirror's damage, not the origin's
// rollback: the round fails with ErrCorrupt, and no security event is
// logged, counted or reported in the status (the one alarm that sends an
// operator after the origin's keys).
func TestOwnDamageIsNoFork(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	head300 := o.head()
	o.grow(300, 200)
	s := &damagingStore{MemStore: itlog.NewMemStore()}
	m, err := itlog.OpenStore(s, itlog.Options{VerifierKeys: []string{o.key.VerifierKey()}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	f := newFollower(t, o, m, nil)
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s.damaged.Store(true)
	o.serve(o.tamper(func(p string) bool { return p == "/latest" }, func([]byte) []byte { return head300 }))
	_, err = f.Sync(ctx)
	if IsSecurity(err) || !errors.Is(err, itlog.ErrCorrupt) {
		t.Fatalf("Sync with the mirror's own tiles damaged = %v; want ErrCorrupt, not a security error", err)
	}
	if st := f.Status(); st.SecurityEvents != 0 {
		t.Errorf("status after own damage: %+v", st)
	}

	// The same origin head against undamaged tiles is a lagging replica.
	s.damaged.Store(false)
	var be *BehindError
	if _, err := f.Sync(ctx); !errors.As(err, &be) {
		t.Fatalf("Sync once the tiles read back right = %v, want a *BehindError", err)
	}
}
