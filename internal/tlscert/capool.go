package tlscert

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// A CAPool is the pool of CA certificates of a PEM file (-tls-client-ca),
// read again when the file changes, as a Reloader reads its pair: at most
// every recheck, on a handshake, by one handshake while the others go on
// with the current pool. A file that cannot be loaded (half written, no
// certificate) is logged once per distinct failure and the previous pool
// is kept. It is safe for concurrent use.
type CAPool struct {
	file  string
	log   *slog.Logger
	now   func() time.Time
	start time.Time // statted counts from it, on the monotonic clock

	cur     atomic.Pointer[loadedPool]
	statted atomic.Int64           // when the file was last stat'ed, nanoseconds since start
	mu      sync.Mutex             // held by the one check running
	failed  atomic.Pointer[string] // why the file's latest change could not be loaded
}

// loadedPool is a pool as read once, with the file's stat then (nil: a
// stat failed, so any file found next is a change).
type loadedPool struct {
	pool *x509.CertPool
	fi   fs.FileInfo
}

// ErrNoCertificate is a CA file that holds no PEM certificate.
var ErrNoCertificate = errors.New("holds no PEM certificate")

// NewCAPool loads the CA file; an error here refuses the start: a
// FileError if it could not be read, else ErrNoCertificate.
func NewCAPool(file string, logger *slog.Logger) (*CAPool, error) {
	p := &CAPool{file: file, log: logger, now: time.Now}
	p.start = p.now()
	l, err := p.load()
	if err != nil {
		return nil, err
	}
	p.cur.Store(l)
	p.statted.Store(int64(p.now().Sub(p.start)))
	return p, nil
}

// load reads and parses the file, its stat taken on the opened file before
// reading. It returns a loaded even with an error: no pool then, and the
// stat of the file if it was read.
func (p *CAPool) load() (*loadedPool, error) {
	data, fi, err := ReadPEM(p.file)
	if err != nil {
		return &loadedPool{}, &FileError{Err: err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return &loadedPool{fi: fi}, ErrNoCertificate
	}
	return &loadedPool{pool: pool, fi: fi}, nil
}

// Pool returns the current pool, read again first if the file changed.
// It is the same pool until a change is loaded.
func (p *CAPool) Pool() *x509.CertPool {
	p.refresh()
	return p.cur.Load().pool
}

// refresh reloads the file if a stat shows a change, at most every
// recheck. Only one check runs at a time, and callers do not wait for it.
func (p *CAPool) refresh() {
	now := int64(p.now().Sub(p.start))
	if now-p.statted.Load() < int64(recheck) || !p.mu.TryLock() {
		return
	}
	defer p.mu.Unlock()
	if now-p.statted.Load() < int64(recheck) {
		return // another handshake checked meanwhile
	}
	p.statted.Store(now)
	cur := p.cur.Load()
	fi, err := stat(p.file)
	if err != nil {
		p.cur.Store(&loadedPool{pool: cur.pool}) // whatever is there next is a change
		p.fail(err)
		return
	}
	if !changed(cur.fi, fi) {
		return
	}
	l, err := p.load()
	if err != nil {
		// The failed file's stat becomes the one compared, so an
		// unchanged broken file is not read again.
		if l.fi == nil {
			l.fi = fi
		}
		p.cur.Store(&loadedPool{pool: cur.pool, fi: l.fi})
		p.fail(err)
		return
	}
	p.cur.Store(l)
	p.failed.Store(nil)
	p.log.Info("loaded the changed client certificate CAs", "file", p.file)
}

// fail notes why the file cannot be used, logging it unless it is the
// failure logged last.
func (p *CAPool) fail(err error) {
	msg := err.Error()
	if prev := p.failed.Swap(&msg); prev != nil && *prev == msg {
		return
	}
	p.log.Error("the client certificate CA file changed but cannot be used; verifying client certificates with the previous CAs", "file", p.file, "err", err)
}

// Problems reports a file that changed but could not be loaded, for the
// server's health. It reads what the handshakes' checks found, touching no
// file, and names no path (anonymous clients read /healthz).
func (p *CAPool) Problems() []string {
	if p.failed.Load() == nil {
		return nil
	}
	return []string{"the client certificate CA file changed but cannot be loaded; client certificates are verified with the previous CAs (see the server log)"}
}
