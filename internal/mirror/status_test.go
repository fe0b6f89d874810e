package mirror

import (
	"context"
	"errors"
	"testing"

	"github.com/sumd-project/sumd/internal/server"
)

// TestStatusOriginFollowsLastFetched: the status kept the largest tree the
// origin was seen to sign since the start, so a refused fork that claimed
// a larger tree left the lag counting its records after the origin was
// honest again and the mirror had caught up, with no problem to say why,
// until a restart; the metric already showed the last fetched. The status
// follows the last fetched too.
func TestStatusOriginFollowsLastFetched(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 500)
	m, _ := newMirror(t, o)
	f := newFollower(t, o, m, func(opts *Options) { opts.Step = 512 })
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fork := openPrimary(t, o.key)
	addRecords(t, fork, 0, 490)
	addRecords(t, fork, 100_000, 3000)
	o.serve(server.New(testName, fork, server.Options{Logger: quiet}))
	var se *SecurityError
	if _, err := f.Sync(ctx); !errors.As(err, &se) || se.Kind != KindFork {
		t.Fatalf("Sync from a fork: %v; want a fork refused", err)
	}
	if st := f.Status(); st.OriginTreeSize != 3490 || st.Lag != 2990 || st.Problem == "" {
		t.Errorf("status while the origin forks: %+v; want the fork's size, a lag of 2990 and a problem", st)
	}
	o.serve(nil)
	o.grow(500, 10)
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.Status(); st.TreeSize != 510 || st.OriginTreeSize != 510 || st.Lag != 0 || st.Problem != "" {
		t.Errorf("status once the origin is honest again: %+v; want tree 510, origin 510, no lag, no problem", st)
	}
}
