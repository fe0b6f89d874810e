// Package tlscert holds the certificate sumd serves HTTPS with, or one of
// its clients presents (-client-cert), read again from its files when they
// change, so that a renewed certificate (ACME, cert-manager, a Kubernetes
// secret, an operator's copy) is used without a restart. Certificates of
// 90 days or less are the rule, a day with some internal CAs; a process
// that reads its certificate only at start uses an expired one unless
// someone remembers to restart it.
//
// The files are checked at most once a second, on a handshake: a stat of
// each (a symlink swap, as Kubernetes does, shows as a change), and their
// content while the stat may hide a change (secret.Changed). One
// handshake checks while the others go on with the current certificate,
// so a file system that hangs a stat holds one handshake, not all. A pair
// that cannot be loaded (half written, a key of another certificate) is
// logged once per distinct failure and the previous certificate is
// served; the next change is tried again. The certificate's expiry is a
// metric and, within a week, a problem of the server's health (of the
// mirror presenting it, for a client certificate). The CAs that verify
// client certificates (-tls-client-ca) are read again the same way
// (CAPool).
package tlscert

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumd-project/sumd/internal/secret"
)

// recheck is how long the files are trusted unchanged without a stat.
var recheck = time.Second

// stat is os.Stat; tests stand in a file system of coarse time stamps.
var stat = os.Stat

// expiryWarning is how long before expiry the certificate is a problem.
const expiryWarning = 7 * 24 * time.Hour

// A Reloader serves the certificate of a certificate and key file pair.
// It is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	words             words // the server's, or a client's (NewClient)
	log               *slog.Logger
	now               func() time.Time
	start             time.Time // statted counts from it, on the monotonic clock

	cur     atomic.Pointer[loaded]
	statted atomic.Int64           // when the files were last stat'ed, nanoseconds since start
	mu      sync.Mutex             // held by the one check running
	failed  atomic.Pointer[string] // why the files' latest change could not be loaded
	gauge   prometheus.GaugeFunc   // set by Register
}

// loaded is a certificate as read once, with the files' stats then (nil:
// a stat failed, so any file found next is a change).
type loaded struct {
	cert          *tls.Certificate
	notAfter      time.Time
	certFI, keyFI fs.FileInfo
}

// words name the certificate and what is done without it, in a server's
// or a client's terms, for the log and the problems.
type words struct {
	what    string // the certificate
	using   string // the log's: what is done while the changed files cannot be used
	kept    string // the problem's: the same
	refused string // what an expired certificate leads to
}

var (
	serverWords = words{"the TLS certificate", "using the previous certificate", "the previous certificate is served", "clients refuse the server"}
	clientWords = words{"the client certificate", "presenting the previous certificate", "the previous certificate is presented", "an origin that asks for it refuses the connection"}
)

// New loads the pair of a server's certificate; an error here refuses the
// start, as the files are not usable.
func New(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	return newReloader(certFile, keyFile, serverWords, logger)
}

// NewClient is New for a client presenting the pair
// (GetClientCertificate): its reloads are logged in a client's words.
func NewClient(certFile, keyFile string, logger *slog.Logger) (*Reloader, error) {
	return newReloader(certFile, keyFile, clientWords, logger)
}

func newReloader(certFile, keyFile string, w words, logger *slog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, words: w, log: logger, now: time.Now}
	r.start = r.now()
	l, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(l)
	r.statted.Store(int64(r.now().Sub(r.start)))
	return r, nil
}

// load reads and parses the pair, each file's stat taken on the opened
// file before reading: a change during the read shows at the next stat.
// It returns a loaded even with an error: no certificate then, and the
// stats of the files it read, nil for those it did not.
func (r *Reloader) load() (*loaded, error) {
	l := new(loaded)
	certPEM, certFI, err := ReadPEM(r.certFile)
	if err != nil {
		return l, &FileError{Err: err}
	}
	l.certFI = certFI
	// The private key is a secret like the signing key: refused if other
	// users may access it. secret.ReadFile checks the file it reads;
	// tls.LoadX509KeyPair would open the path again after the check.
	keyPEM, keyFI, err := secret.ReadFile(r.keyFile, MaxPEM)
	if err != nil {
		return l, &FileError{Key: true, Err: err}
	}
	l.keyFI = keyFI
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return l, err
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return l, err
		}
	}
	l.cert, l.notAfter = &cert, leaf.NotAfter
	return l, nil
}

// A FileError is a file of the pair that could not be read (missing, too
// large, a key other users may read), as against a pair read that does
// not parse or match: a caller names the option of the file from it, with
// no read of its own before New's.
type FileError struct {
	Key bool // the key file, else the certificate's
	Err error
}

func (e *FileError) Error() string { return e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// MaxPEM caps a certificate, key or CA file: a chain of a few certificates
// is a few KiB, and PEM lets any text lie between the blocks, which the
// parsers skip after reading it all.
const MaxPEM = 1 << 20

// ReadPEM reads the regular file at path, of at most MaxPEM bytes, and
// returns its content and the stat of the file it read.
func ReadPEM(path string) ([]byte, fs.FileInfo, error) {
	return secret.ReadPublicFile(path, MaxPEM)
}

// GetCertificate is a tls.Config's: the current certificate, read again
// first if the files changed.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.refresh()
	return r.cur.Load().cert, nil
}

// GetClientCertificate is a tls.Config's, for a client presenting the
// pair: the current certificate, read again first if the files changed.
// A client that lives as long as the process (the transport of a mirror
// sumd serve follows) presents a renewed certificate so, as a server
// serves one.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.refresh()
	return r.cur.Load().cert, nil
}

// refresh reloads the pair if a stat shows a change, at most every recheck.
// Only one check runs at a time, and callers do not wait for it.
func (r *Reloader) refresh() {
	now := int64(r.now().Sub(r.start))
	if now-r.statted.Load() < int64(recheck) || !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	if now-r.statted.Load() < int64(recheck) {
		return // another handshake checked meanwhile
	}
	r.statted.Store(now)
	cur := r.cur.Load()
	certFI, err1 := stat(r.certFile)
	keyFI, err2 := stat(r.keyFile)
	if err := cmp.Or(err1, err2); err != nil {
		// Whatever is there next is a change, to be loaded.
		r.cur.Store(&loaded{cert: cur.cert, notAfter: cur.notAfter})
		r.fail(err)
		return
	}
	if !changed(cur.certFI, certFI) && !changed(cur.keyFI, keyFI) {
		return
	}
	l, err := r.load()
	if err != nil {
		// The failed files' stats become the ones compared, so an
		// unchanged broken pair is not read again: those of the reads
		// where there was one, which secret.Changed can tell a rewrite
		// their time stamps hide with (the key written in the second the
		// certificate alone was found).
		r.cur.Store(&loaded{cert: cur.cert, notAfter: cur.notAfter, certFI: cmp.Or(l.certFI, certFI), keyFI: cmp.Or(l.keyFI, keyFI)})
		r.fail(err)
		return
	}
	r.cur.Store(l)
	r.failed.Store(nil)
	r.log.Info("loaded the changed "+strings.TrimPrefix(r.words.what, "the "), "cert", r.certFile, "not_after", l.notAfter.UTC())
}

// changed compares a file's stats with those stored; none stored (a stat
// failed) is a change.
func changed(stored, now fs.FileInfo) bool { return stored == nil || secret.Changed(stored, now) }

// fail notes why the files cannot be used, logging it unless it is the
// failure logged last.
func (r *Reloader) fail(err error) {
	msg := err.Error()
	if prev := r.failed.Swap(&msg); prev != nil && *prev == msg {
		return
	}
	r.log.Error(r.words.what+" files changed but cannot be used; "+r.words.using+" (a renewal that writes the certificate and the key separately can show this between the two)",
		"cert", r.certFile, "key", r.keyFile, "err", err)
}

// NotAfter is when the certificate served now expires.
func (r *Reloader) NotAfter() time.Time { return r.cur.Load().notAfter }

// Problems reports a certificate that expires within a week, or files that
// changed but could not be loaded, for the server's health. It reads what
// the handshakes' checks found, touching no file. The texts name no path
// (anonymous clients read /healthz); the log has them.
func (r *Reloader) Problems() []string {
	return r.problems(serverWords)
}

// ClientProblems is Problems for a client presenting the certificate (the
// mirror sumd serve follows with -client-cert), in a client's words. It
// checks the files first, as a handshake does (at most once a second,
// without waiting for a check running): an origin that does not ask for
// the certificate makes no handshake read a renewed one, whose
// predecessor's expiry would stay a problem until a restart.
func (r *Reloader) ClientProblems() []string {
	r.refresh()
	return r.problems(clientWords)
}

// problems is Problems in the words w.
func (r *Reloader) problems(w words) []string {
	what, kept, refused := w.what, w.kept, w.refused
	var out []string
	if msg := r.failed.Load(); msg != nil {
		out = append(out, fmt.Sprintf("%s files changed but cannot be loaded; %s (see the server log)", what, kept))
	}
	switch left := r.NotAfter().Sub(r.now()); {
	case left <= 0:
		out = append(out, fmt.Sprintf("%s expired at %s: %s; renew it (the files are read again when they change)", what, r.NotAfter().UTC().Format(time.RFC3339), refused))
	case left < expiryWarning:
		out = append(out, fmt.Sprintf("%s expires at %s, in less than a week: renew it (the files are read again when they change)", what, r.NotAfter().UTC().Format(time.RFC3339)))
	}
	return out
}

// Register exports the certificate's expiry as
// sumd_tls_certificate_expiry_timestamp_seconds.
func (r *Reloader) Register(reg prometheus.Registerer) {
	r.gauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "sumd", Name: "tls_certificate_expiry_timestamp_seconds",
		Help: "When the TLS certificate served now expires (Unix time); the files are read again when they change.",
	}, func() float64 { return float64(r.NotAfter().Unix()) })
	reg.MustRegister(r.gauge)
}
