package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/tlog"
)

// DefaultBackupTimeout bounds one backup download: a 10 GB database at
// about 3 MB/s.
const DefaultBackupTimeout = time.Hour

// backup serves GET /admin/backup: a consistent copy of the database
// (tlog.Log.Snapshot, taken between commits, so exactly the published
// state) while the server keeps serving and appending. The copy is first
// written to a temporary file and then sent: bbolt's read transaction
// holds a lock that a commit growing the file must wait for, so it must
// not last as long as a slow download. A store that cannot copy itself
// (PostgreSQL) answers 501 with the store's advice. HEAD answers the
// headers without a snapshot: no Content-Length, and a store that cannot
// copy itself is found out by GET only. One backup is made at a time
// (others are answered 503), and the copy stops when its request ends.
func (h *Handler) backup(w http.ResponseWriter, r *http.Request) {
	if h.opts.Snapshot == nil {
		h.fail(w, r, &httpError{http.StatusNotImplemented, "this server does not serve backups"})
		return
	}
	if r.Method == http.MethodHead {
		// No snapshot is written for HEAD: its size is only known once
		// the whole database has been spooled to disk.
		backupHeaders(w.Header())
		return
	}
	select {
	case h.backups <- struct{}{}:
		defer func() { <-h.backups }()
	default:
		// Each backup is a copy of the whole database in the temporary
		// directory: two at once would double that, and many fill the
		// disk.
		w.Header().Set("Retry-After", "60")
		h.fail(w, r, &httpError{http.StatusServiceUnavailable, "another backup is being made: try again once it is done"})
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(h.opts.BackupTimeout))
	f, n, err := h.spool(r.Context())
	if errors.Is(err, tlog.ErrNoSnapshot) {
		h.fail(w, r, &httpError{http.StatusNotImplemented, err.Error()})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	backupHeaders(w.Header())
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	sent, err := io.Copy(w, f)
	h.log.InfoContext(r.Context(), "sent a backup of the database", "bytes", sent, "err", err)
}

// backupHeaders sets the headers of a backup, GET or HEAD.
func backupHeaders(hd http.Header) {
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", `attachment; filename="sumd-backup.db"`)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
}

// spool writes a snapshot to a temporary file and returns it, rewound,
// with its size.
func (h *Handler) spool(ctx context.Context) (*os.File, int64, error) {
	snap, err := h.opts.Snapshot(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer snap.Close()
	if err := h.roomForBackup(snap.Size()); err != nil {
		return nil, 0, err
	}
	f, err := scratch.Create(h.opts.TempDir, scratch.Backup) // removed at start if a crash leaves it
	if err != nil {
		return nil, 0, fmt.Errorf("failed to create the backup's temporary file: %w", err)
	}
	// The floor is kept while the copy is written too: the log, on this
	// disk by default, grows meanwhile, and a copy written on to the last
	// byte could fail a commit half-way, which stops the log. The writer
	// keeps its own error, which bbolt's WriteTo reports as text.
	sw := &spoolWriter{w: f, path: f.Name(), floor: h.floor(), left: snap.Size()}
	n, err := snap.WriteTo(ctxWriter{ctx, sw})
	if err == nil {
		snap.Close() // release the read before the download
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		var low *tlog.LowDiskError
		if errors.As(sw.err, &low) {
			h.log.Error("backup stopped: not enough free disk space in the temporary directory", "dir", filepath.Dir(f.Name()),
				"free", low.Free, "floor", low.Floor)
			return nil, 0, &httpError{http.StatusInsufficientStorage, fmt.Sprintf(
				"not enough free disk space for a backup: the temporary directory's (-tmp-dir) file system went down to %d MiB free while the copy was written, and %d MiB is kept free (-min-free-disk); free space there or point -tmp-dir at a larger disk",
				low.Free>>20, low.Floor>>20)}
		}
		return nil, 0, fmt.Errorf("failed to write the backup: %w", err)
	}
	return f, n, nil
}

// A spoolWriter writes a backup's copy of left bytes to path through w,
// keeping floor bytes free (negative: none) on its file system: it reads
// the free space again every spoolStep bytes, and refuses, with a
// *tlog.LowDiskError kept in err, a write past which less than the floor
// and the copy's next step (or what is left of it, if less) would be free.
// A copy that roomForBackup let start, exactly room for it and the floor,
// passes while nothing else takes that room. tlog.FloorWriter asks for a
// step more than the write, which that copy does not have.
type spoolWriter struct {
	w         io.Writer
	path      string
	floor     int64
	left, due int64 // bytes still to come; bytes it may write before it looks again
	err       error
}

// spoolStep is how many bytes a spoolWriter writes between two looks at
// the free space.
const spoolStep = 1 << 20

func (s *spoolWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := int64(len(p))
	if s.floor >= 0 && s.due < n {
		need := max(n, min(s.left, spoolStep))
		if free, ok := freeSpace(s.path); ok && free < s.floor+need {
			s.err = &tlog.LowDiskError{Path: s.path, Free: free, Floor: s.floor, Need: need}
			return 0, s.err
		}
		s.due = need
	}
	s.due -= n
	s.left -= n
	k, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return k, err
}

// freeSpace is tlog.FreeSpace; tests fake a full disk.
var freeSpace = tlog.FreeSpace

// roomForBackup refuses, with a 507, a copy of size bytes into the
// temporary directory unless its file system has room for it and the
// floor (Options.MinFree) more: the directory is by default on the
// database's disk, and a backup that filled it would make the log's next
// commit fail there, which stops the log. A file system that cannot tell
// its free space passes, as the log's own check does.
func (h *Handler) roomForBackup(size int64) error {
	floor := max(h.floor(), 0)
	dir := cmp.Or(h.opts.TempDir, os.TempDir())
	// freeSpace takes the path of a file, and looks at the file system of
	// its directory: given dir, it would look at dir's parent's, another
	// one when dir is a mount point.
	free, ok := freeSpace(filepath.Join(dir, "sumd-backup"))
	if !ok || free >= size+floor {
		return nil
	}
	h.log.Error("backup refused: not enough free disk space in the temporary directory", "dir", dir,
		"free", free, "backup", size, "floor", floor)
	return &httpError{http.StatusInsufficientStorage, fmt.Sprintf(
		"not enough free disk space for a backup: the copy of the database needs %d MiB in the temporary directory (-tmp-dir) and %d MiB is kept free beside it (-min-free-disk), but its file system has %d MiB free; free space there or point -tmp-dir at a larger disk",
		mibCeil(size), floor>>20, free>>20)}
}

// floor is the space writes into the temporary directory leave free
// (Options.MinFree): negative for none.
func (h *Handler) floor() int64 {
	if h.opts.MinFree == 0 {
		return tlog.DefaultMinFree
	}
	return h.opts.MinFree
}

// mibCeil is n bytes in MiB, rounded up.
func mibCeil(n int64) int64 { return (n + 1<<20 - 1) >> 20 }

// A ctxWriter fails its writes once ctx has ended: a backup whose request
// ended (the client gave up, the server shuts down) stops copying the
// database.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Backup downloads a consistent copy of the database from GET
// /admin/backup into w, which writes the file path, and returns its size.
// It keeps floor bytes free on path's file system (negative: no floor), so
// that a hostile or broken server, or a URL that streams forever, cannot
// fill the disk: a backup larger, by its Content-Length, than the free
// space above the floor is refused before its body is read, and the copy
// stops, with a *tlog.LowDiskError, before a write that would go under
// it. Either way the error is a tlog.ErrLowDisk, and what w holds is the
// caller's to remove. An answer whose Content-Type is another than sumd's
// (application/octet-stream) is refused before its body is read.
func (c *Client) Backup(ctx context.Context, w io.Writer, path string, floor int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+"/admin/backup", nil)
	if err != nil {
		return 0, fmt.Errorf("failed to build request: %w", err)
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		return 0, &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	// sumd sends its copy as application/octet-stream (backupHeaders). A
	// page in its place (a proxy's sign-in page, a -server naming another
	// site) written out would fail the copy's check as an invalid
	// database, which a second run fetches again.
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "" && ct != "application/octet-stream" {
		return 0, fmt.Errorf("the server answered 200 with %.64q, not a copy of the database (application/octet-stream), and nothing was written: -server must be the URL of sumd itself, not of a sign-in page or a proxy that answers for it", ct)
	}
	space := tlog.SpaceGuard{Floor: floor, Free: freeSpace}
	if resp.ContentLength > 0 {
		if err := space.Room(path, resp.ContentLength); err != nil {
			return 0, fmt.Errorf("the server sends a backup of %d MiB: %w", mibCeil(resp.ContentLength), err)
		}
	}
	fw := &storeWriter{FloorWriter: tlog.FloorWriter{W: w, Path: path, Guard: space}}
	n, err := io.Copy(fw, resp.Body)
	switch {
	case fw.err != nil:
		err = fmt.Errorf("failed to write the backup after %d bytes: %w", n, fw.err)
	case err == nil && resp.ContentLength >= 0 && n != resp.ContentLength:
		err = fmt.Errorf("the backup was cut short: %d of %d bytes", n, resp.ContentLength)
	}
	return n, err
}
