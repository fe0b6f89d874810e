package storetest_test

import (
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/storetest"
)

func TestBolt(t *testing.T) {
	dir := t.TempDir()
	storetest.Run(t, boltOpener(dir))
}

func TestMem(t *testing.T) {
	storetest.Run(t, memStores{}.open)
}

// TestBoltDamage and TestMemDamage run the log-level damage checks.
func TestBoltDamage(t *testing.T) {
	dir := t.TempDir()
	storetest.Damage(t, boltOpener(dir), boltTamperer(dir))
}

func TestMemDamage(t *testing.T) {
	m := memStores{}
	storetest.Damage(t, m.open, m)
}

func boltOpener(dir string) storetest.Opener {
	return func(t *testing.T, name string) tlog.Store {
		s, err := tlog.OpenBolt(filepath.Join(dir, name+".db"), tlog.BoltOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// memStores are MemStores by name.
type memStores map[string]*tlog.MemStore

var memMu sync.Mutex

func (m memStores) open(t *testing.T, name string) tlog.Store { return m.get(name) }

func (m memStores) get(name string) *tlog.MemStore {
	memMu.Lock()
	defer memMu.Unlock()
	if m[name] == nil {
		m[name] = tlog.NewMemStore()
	}
	return m[name]
}

func (m memStores) SetIndex(t *testing.T, name, key string, id int64) { m.get(name).SetIndex(key, id) }
func (m memStores) SetRecord(t *testing.T, name string, id int64, text []byte) {
	m.get(name).SetRecord(id, text)
}
func (m memStores) SetTile(t *testing.T, name string, id tlog.TileID, data []byte) {
	m.get(name).SetTile(id, data)
}

// boltTamperer writes a closed bbolt store's buckets directly, in the
// layout bolt.go documents.
type boltTamperer string

func (dir boltTamperer) put(t *testing.T, name, bucket string, key, value []byte) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(string(dir), name+".db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte(bucket)).Put(key, value) }); err != nil {
		t.Fatal(err)
	}
}

func (dir boltTamperer) SetIndex(t *testing.T, name, key string, id int64) {
	dir.put(t, name, "index", []byte(key), binary.BigEndian.AppendUint64(nil, uint64(id)))
}

func (dir boltTamperer) SetRecord(t *testing.T, name string, id int64, text []byte) {
	dir.put(t, name, "records", binary.BigEndian.AppendUint64(nil, uint64(id)), text)
}

func (dir boltTamperer) SetTile(t *testing.T, name string, id tlog.TileID, data []byte) {
	dir.put(t, name, "tiles", binary.BigEndian.AppendUint64([]byte{byte(id.L)}, uint64(id.N)), data)
}
