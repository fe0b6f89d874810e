package serve

import (
	"fmt"
	"strconv"
)

// The open files a server needs beside its listeners' connections, for
// the check of its limit (checkFileLimit): filesBeside for the database
// and the mirrors' (a bbolt file each, or a PostgreSQL pool's
// connections), the TUF repository, the OCI sync, memory files and
// lookups of names, as docs/operations.md says; and filesPerFetch for each
// upstream fetch: its connections to the proxy and to the upstream
// checksum database, and its temporary zip.
const (
	filesBeside   = 1000
	filesPerFetch = 3
)

// filesNeeded is the open files cfg's server may need at once: every
// listener's -max-connections, and what is beside them.
func filesNeeded(cfg Config) uint64 {
	maxConns := cfg.MaxConnections
	if maxConns <= 0 {
		maxConns = DefaultMaxConnections
	}
	listeners := 1 // -listen
	for _, addr := range []string{cfg.AdminListen, cfg.MetricsListen, cfg.ReadListen} {
		if addr != "" {
			listeners++
		}
	}
	return uint64(listeners*maxConns + filesBeside + max(cfg.UpstreamParallel, 0)*filesPerFetch)
}

// planFileLimit decides about the soft limit on open files, soft, under
// the hard limit, hard, for a server that needs need: the soft limit to
// have (raised toward the hard limit, never lowered), and whether even
// that is short of need.
func planFileLimit(soft, hard, need uint64) (set uint64, short bool) {
	if soft >= need {
		return soft, false
	}
	set = min(need, hard)
	return max(set, soft), set < need
}

// A fileLimiter reads and sets the process's limit on open files
// (RLIMIT_NOFILE); get fails where there is none to read.
type fileLimiter struct {
	get func() (soft, hard uint64, err error)
	set func(soft, hard uint64) error
}

// checkFileLimit raises the soft limit on open files if cfg's server may
// need more, and warns when the hard limit is short too: at the cap, the
// process would run out of file descriptors (accept fails with "too many
// open files", so do the database, the upstream fetches and the temporary
// zips) before a listener's -max-connections takes effect. Go raises the
// soft limit to the hard one at start on Linux and macOS, so the warning
// is for a hard limit set low: a systemd unit's LimitNOFILE, a shell's
// ulimit -Hn, a container's --ulimit nofile.
func checkFileLimit(cfg Config, lim fileLimiter) {
	soft, hard, err := lim.get()
	if err != nil {
		return // no limit to check on this system
	}
	need := filesNeeded(cfg)
	set, short := planFileLimit(soft, hard, need)
	if set != soft {
		if err := lim.set(set, hard); err != nil {
			cfg.Logger.Warn("failed to raise the soft limit on open files", "limit", soft, "needed", need, "err", err)
			set, short = soft, true
		}
	}
	if short {
		cfg.Logger.Warn("the limit on open files is below what the listeners may need at -max-connections, plus the database, upstream fetches and temporary files: past it, connections and files fail with \"too many open files\"",
			"limit", set, "needed", need,
			"fix", fmt.Sprintf("raise the limit to at least %s: LimitNOFILE= in the systemd unit, ulimit -n (-Hn for the hard limit) in the shell, or docker run --ulimit nofile=; or lower -max-connections", strconv.FormatUint(need, 10)))
	}
}
