package tlog_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/storetest"
)

// TestSecondWriterRace runs three logs on one MemStore, as several sumd
// processes on one database: the store passes storetest's check of
// several writers. (It lives outside package tlog, as storetest imports
// tlog.)
func TestSecondWriterRace(t *testing.T) {
	s := tlog.NewMemStore()
	storetest.Writers(t, func(t *testing.T, k *tlog.Key) *tlog.Log {
		l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Verify: tlog.VerifyFull,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
