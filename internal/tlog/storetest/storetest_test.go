package storetest_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/storetest"
)

func TestBolt(t *testing.T) {
	dir := t.TempDir()
	storetest.Run(t, func(t *testing.T, name string) tlog.Store {
		s, err := tlog.OpenBolt(filepath.Join(dir, name+".db"), tlog.BoltOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMem(t *testing.T) {
	var mu sync.Mutex
	stores := map[string]*tlog.MemStore{}
	storetest.Run(t, func(t *testing.T, name string) tlog.Store {
		mu.Lock()
		defer mu.Unlock()
		if stores[name] == nil {
			stores[name] = tlog.NewMemStore()
		}
		return stores[name]
	})
}
