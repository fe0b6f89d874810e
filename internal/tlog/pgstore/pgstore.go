// Package pgstore keeps a sumd log in PostgreSQL, so that several sumd
// processes serve one log: a tlog.SharedStore on two pgx connection pools,
// one for reads and a small one (controlConns) for the log's own
// statements and reads (tlog.IsOwnRead), so that a flood of reads cannot
// hold up the head's poll, the durability barriers or a batch's lookup
// and commit.
//
// # Tables
//
// sumd creates its tables in the database (and schema, see search_path)
// the URL names, the first time a log is created there, and migrates them
// when a newer sumd opens them; it refuses tables of a newer sumd, at
// Open and, once open, in Load and Commit (a newer sumd may migrate them
// meanwhile).
//
//	sumd_schema   id = 1, version                        the schema version (migrations below)
//	sumd_log      id = 1, name, vkeys, mirror,           the log's metadata and latest signed head;
//	              head, tree_size, root                  its row lock serializes every commit
//	sumd_records  id → text                              records (two go.sum lines)
//	sumd_index    key ("path@version", bytea) → id       the module@version index
//	sumd_tiles    (level, n) → data                      hash tiles, 32 bytes per hash, as in bbolt
//	sumd_aux      key → value                            auxiliary state (OCI sync progress)
//
// Keys are bytea, not text, so that index order is bytewise whatever the
// database's collation (ScanIndex's contract).
//
// # Commits
//
// A batch commits in one transaction: SELECT head … FOR UPDATE, compare it
// with Batch.Prev (ErrHeadMoved if another writer moved it), then the
// records, index entries and tiles as one array insert each (unnest), the
// head, and COMMIT. The inserts never overwrite a record, nor a tile with
// other hashes, and move an index entry only to a smaller id; the head's
// UPDATE must change its row: else the statement fails before COMMIT (see
// writeRecordsSQL). The row
// lock makes two writers' commits strictly sequential, so neither can fork
// the log: the loser re-reads the head, and its sequencer adopts it and
// re-stages (see tlog's package doc).
//
// A COMMIT that gets no answer (the connection or the server died) is not
// simply ambiguous here: its transaction held the head's row lock before
// COMMIT was sent, so a new transaction's SELECT … FOR UPDATE waits until it
// has ended, committed or rolled back, and then reads the truth. Commit
// retries that with backoff for Options.ResolveTimeout and answers nil
// (stored), ErrNotPersisted (not stored, head unchanged) or ErrHeadMoved
// (not stored, and another writer committed since). A batch that does not
// move the head (a copy's chunk, a mirror's staging), or one whose head
// another writer has replaced since, is judged by its own rows instead:
// stored if every record, index entry and tile is stored as it wrote it,
// else not (a commit is all or nothing); if they cannot tell (no rows, an
// index entry moved since) the failure is ambiguous. So is it if the
// database stays unreachable that long; that stops the log. The resolving transaction is committed, not rolled back: it holds a
// row lock, so under synchronous replication its COMMIT returns only once
// the WAL before it — the lost commit's, if it was stored — has reached
// the standby.
//
// # Reads and availability
//
// Reads are single statements, whatever the number of keys or ids: each
// element of an array parameter (unnest($1)) probes the primary key in a
// LATERAL subquery that OFFSET 0 keeps from being flattened into a join.
// The obvious forms, WHERE key = ANY($1) and a join with unnest($1), leave
// the choice to the planner, which for a growing table with stale
// statistics, or for a prepared statement's generic plan, chose sequential
// scans: the sequencer's lookup of a 130-key batch took 5–6 ms on a log of
// 90,000 records instead of 0.7, and 256 concurrent callers got 11,000
// records/s instead of 26,000 (BenchmarkAppend).
//
// Load returns only a durable head. A COMMIT that waits for a synchronous
// standby is visible to every reader once its backend is terminated, or the
// primary restarts ("committed locally, but might not have been
// replicated"), though a failover to the standby would lose it. So a head
// other than the last one this store committed or confirmed is returned
// only after a barrier: a transaction that takes a row lock (which writes
// WAL) and commits, begun after the head was read; its COMMIT returns once
// the WAL before it is on the standbys. While they are away Load fails and
// the Log turns unavailable after its MaxHeadAge, instead of publishing.
//
// A query cancel of a COMMIT waiting for the standbys (pg_cancel_backend,
// by an admin tool or a pooler) ends the wait too, but the COMMIT answers
// success, with only a WARNING to say that the transaction "has already
// committed locally, but might not have been replicated". The connections
// record WARNINGs (onNotice): a commit answered with one is acknowledged
// only once a barrier that began after it has committed (confirmDurable),
// and a barrier or a lost answer's resolution answered with one confirms
// nothing. Every session receives WARNINGs and waits for the standbys
// whatever the URL, role or database say (setSession).
//
// Full hash tiles never change and are kept in an in-memory LRU cache,
// cached when read, before the log authenticated them: one the log finds
// damaged it drops (tlog.CachingStore), so a repaired row is read again. A
// failure to reach the database is a *tlog.UnavailableError, which the HTTP
// server answers with 503 and Retry-After; the pool reconnects by itself,
// so a process recovers when the database does. So is a read refused
// because Options.MaxWaitingReads already wait for a read connection.
//
// # Portability
//
// The SQL is plain: no LISTEN/NOTIFY, no stored procedures, and one
// advisory lock, taken only while creating the tables; ON CONFLICT in
// WITH clauses, unnest of several arrays, LATERAL, WITH RECURSIVE
// (scanReleasesSQL), SELECT … FOR UPDATE and
// FOR KEY SHARE, and set_config for the session's parameters. Tested with
// PostgreSQL 15 only.
package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/tlog"
)

// Options configure Open.
type Options struct {
	// Logger receives the store's logs: a lost and a regained database, a
	// commit whose answer was lost. nil means slog.Default.
	Logger *slog.Logger
	// TileCache is how many full hash tiles (8 KiB each) are cached in
	// memory (default 4096, 32 MiB): every lookup's proof reads some.
	TileCache int
	// RecordCache is how many records, and index entries, are cached in
	// memory (default 65536, about 20 MiB): the versions clients look up
	// most are answered without a statement.
	RecordCache int
	// Timeout bounds each statement (default 30s). The server ends a
	// transaction left idle for twice as long (see setSession).
	Timeout time.Duration
	// ResolveTimeout bounds how long Commit keeps trying to learn the
	// outcome of a COMMIT that got no answer (default 1 minute). Past it,
	// the failure is ambiguous and the log stops.
	ResolveTimeout time.Duration
	// Registerer, if set, receives the store's metrics (sumd_postgres_*).
	Registerer prometheus.Registerer
	// MaxWaitingReads caps the reads waiting for a read connection at
	// once (default 1024, about a tenth of a second of lookups with
	// pool_max_conns connections). A read past it fails at once with a
	// *tlog.UnavailableError (503 with Retry-After): else a flood of
	// lookups of missing versions, each a statement, piles up without
	// bound, every one a goroutine holding its request until Timeout.
	MaxWaitingReads int
	// Reopen says the process opened this URL before and was warned then
	// of what is wrong with it (a certificate not verified): Open does not
	// warn again.
	Reopen bool
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TileCache <= 0 {
		o.TileCache = 4096
	}
	if o.RecordCache <= 0 {
		o.RecordCache = 1 << 16
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.ResolveTimeout <= 0 {
		o.ResolveTimeout = time.Minute
	}
	if o.MaxWaitingReads <= 0 {
		o.MaxWaitingReads = 1024
	}
	return o
}

// A Store is a log in a PostgreSQL database. It is safe for concurrent
// use, by any number of processes.
type Store struct {
	pool  *pgxpool.Pool // reads: Lookup, ReadRecords, ReadTiles, ScanIndex, ScanIndexBack, Aux (reader)
	ctl   *pgxpool.Pool // everything else (controlConns), and the log's own reads: see Open
	opts  Options
	log   *slog.Logger
	tiles *lru.Cache[tlog.TileID, []byte] // full tiles: immutable
	cache recordCache
	down  atomic.Bool   // the last statement could not reach the database
	open  atomic.Bool   // Open returned the store: a failure to reach the database is a loss, not a failed start
	done  chan struct{} // closed by Close

	reads    atomic.Int64 // reads holding or waiting for a read connection (enterRead)
	maxReads int64        // the read pool's connections plus MaxWaitingReads
	refused  atomic.Int64 // reads refused past maxReads, for the metrics
	warned   atomic.Int64 // when a refusal was last logged (UnixNano)

	lockMu sync.Mutex
	locked *locked // begun by LockHead, for the next Commit

	lost map[string]*atomic.Int64 // lost COMMIT answers by outcome, for the metrics

	syncMu   sync.Mutex
	durable  []byte   // a head known to be on the synchronous standbys (committed here, or read before a barrier)
	barrier  *barrier // the barrier running, if any
	barriers int      // barriers started

	// finish sends a batch's writes and COMMIT (commit); tests replace
	// it to lose the answer, or the commit.
	finish func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error
}

var (
	_ tlog.LockingStore = (*Store)(nil)
	_ tlog.AuxStore     = (*Store)(nil)
	_ tlog.CachingStore = (*Store)(nil)
)

// IsURL reports whether db names a PostgreSQL database (postgres:// or
// postgresql://) rather than a bbolt file.
func IsURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// Open connects to the database url names (a postgres:// URL or any
// connection string pgx accepts) and migrates sumd's tables if a previous
// sumd created them. It refuses tables of a newer sumd. A database without
// them opens: Load answers ErrNoLog, and Create creates them.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("invalid PostgreSQL URL: %w", unquoted(err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	opts = opts.withDefaults()
	if hosts := unverifiedHosts(&cfg.ConnConfig.Config); len(hosts) > 0 && !opts.Reopen {
		opts.Logger.Warn("the connection to PostgreSQL does not verify the server's certificate: whoever is on the network between could answer for the database, acknowledging commits it never stored; set sslmode=verify-full in the URL (docs/ha.md)",
			"hosts", strings.Join(hosts, ","))
	}
	setSession(cfg, opts)
	cfg.ConnConfig.OnNotice = onNotice
	// The log's own statements get connections of their own: reads
	// (lookups of missing keys, uncached records and tiles) are as many as
	// anonymous clients send, and queued ahead of the head's poll, the
	// barriers and the writer's commit they would make the head stale
	// (503 for everyone after -max-head-age) and stall the writes.
	ctl := cfg.Copy()
	ctl.MaxConns = controlConns
	ctl.MinConns, ctl.MinIdleConns = min(ctl.MinConns, controlConns), min(ctl.MinIdleConns, controlConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to set up connections to PostgreSQL: %w", err)
	}
	ctlPool, err := pgxpool.NewWithConfig(ctx, ctl)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("failed to set up connections to PostgreSQL: %w", err)
	}
	tiles, _ := lru.New[tlog.TileID, []byte](opts.TileCache)
	s := &Store{pool: pool, ctl: ctlPool, opts: opts, log: opts.Logger, tiles: tiles, cache: newRecordCache(opts.RecordCache),
		done: make(chan struct{}), finish: commit, maxReads: int64(cfg.MaxConns) + int64(opts.MaxWaitingReads),
		lost: map[string]*atomic.Int64{"stored": {}, "not_stored": {}, "unknown": {}}}
	if err := s.migrate(ctx, false); err != nil {
		s.closePools()
		return nil, err
	}
	if err := s.register(opts.Registerer); err != nil {
		s.closePools()
		return nil, fmt.Errorf("failed to register the PostgreSQL metrics: %w", err)
	}
	s.open.Store(true)
	return s, nil
}

// unquoted returns err, pgx's failure to parse a connection string, with
// the string left out of its text: pgx masks the secrets it finds there,
// but not all of them (password = 'x', spaced as libpq and pgx accept),
// and sumd prints and logs the error. The caller names the database,
// masked (cmd/sumd's redact). It wraps pgx's cause, not pgx's error,
// which holds the string.
func unquoted(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return err
	}
	c := *pe
	c.ConnString = "…"
	return &parseError{text: c.Error(), err: pe.Unwrap()}
}

// A parseError is a *pgconn.ParseConfigError's text without the
// connection string, and its cause (nil if none).
type parseError struct {
	text string
	err  error
}

func (e *parseError) Error() string { return e.text }
func (e *parseError) Unwrap() error { return e.err }

// controlConns is the size of the pool of the log's own statements: the
// writer's transaction (held from LockHead to Commit), then the
// resolution of a lost answer; the writer's reads (tlog.IsOwnRead: the
// lookup of a batch's keys, one statement at a time beside its
// transaction); one barrier; the head's polls (Load: the refresh, and a
// request's catch-up); an auxiliary value's write (OCI sync); the opens,
// migrations and creations of the tables and the log.
// Reads use the other pool, sized by the URL's pool_max_conns (pgx's
// default: the greater of 4 and the number of CPUs).
const controlConns = 4

// Keepalives on every connection, in both directions: a peer gone without
// a word (a network partition, a machine lost) is noticed after about
// keepaliveIdle + keepaliveCount × keepaliveInterval of silence. Keepalives
// are sent only while nothing waits to be acknowledged: a connection
// whose data goes unacknowledged for userTimeout (TCP_USER_TIMEOUT,
// tcp_user_timeout) is given up, rather than retransmitted for about 15
// minutes, which would keep a backend sending a result, and the head's
// row lock its transaction holds, that long.
const (
	keepaliveIdle     = 10 * time.Second
	keepaliveInterval = 5 * time.Second
	keepaliveCount    = 3
	userTimeout       = keepaliveIdle + keepaliveCount*keepaliveInterval
)

// setSession makes a connection's failures end in bounded time, and its
// commits wait for the synchronous standbys in a way sumd can see.
//
// The head's row lock is held by a transaction the process drives: if the
// process loses the network meanwhile, its backend would sit "idle in
// transaction" holding the lock, blocking every process's writes, until
// the server noticed the dead client (by default after two hours of TCP
// silence). So the server ends a transaction left idle for twice the
// statement timeout (idle_in_transaction_session_timeout; its COMMIT, if
// one comes, fails and is resolved as not stored), and both ends send TCP
// keepalives and give up on unacknowledged data (userTimeout). Those the URL sets (as query parameters, or options=-c…)
// are kept.
//
// Durability is not left to the URL, the role or the database: a COMMIT
// must wait for the synchronous standbys (synchronous_commit = on;
// remote_apply, stronger, is kept), and the WARNING that says the wait was
// cancelled (see onNotice) must reach sumd (client_min_messages =
// warning). A role's client_min_messages = error, or synchronous_commit =
// off for the database, would otherwise make sumd acknowledge commits a
// failover loses. They are overridden, not refused: PostgreSQL makes both
// a session's choice, and a default chosen for other applications of the
// role or database should not stop sumd (docs/ha.md).
//
// So are the defaults the head's row lock relies on: writers take turns
// on it, each SELECT … FOR UPDATE waiting for the commit before it and
// then reading the head that commit wrote, which only READ COMMITTED does
// (under repeatable read or serializable the waiter fails with a
// serialization failure), and for as long as that takes (no lock_timeout;
// no statement_timeout, since every statement but COMMIT has a deadline
// of sumd's own, Options.Timeout: a batch's writes, sent with its COMMIT,
// a statement_timeout of their transaction, see begin). And sumd writes: a role's or database's
// default_transaction_read_only = on would make every write, and every
// durability barrier, fail as a standby's do (25006, which a failover
// makes come and go), a 503 for ever; a standby's transactions stay
// read-only whatever the session says.
//
// The parameters are set after connecting, not in the startup packet,
// which PgBouncer refuses unknown parameters in.
func setSession(cfg *pgxpool.Config, opts Options) {
	cc := cfg.ConnConfig
	names := []string{"client_min_messages", "default_transaction_isolation", "default_transaction_read_only", "lock_timeout", "statement_timeout"}
	values := []string{"warning", "read committed", "off", "0", "0"}
	for _, p := range [][2]string{
		{"idle_in_transaction_session_timeout", strconv.FormatInt(max(1, (2*opts.Timeout).Milliseconds()), 10)},
		{"tcp_keepalives_idle", strconv.Itoa(int(keepaliveIdle / time.Second))},
		{"tcp_keepalives_interval", strconv.Itoa(int(keepaliveInterval / time.Second))},
		{"tcp_keepalives_count", strconv.Itoa(keepaliveCount)},
		{"tcp_user_timeout", strconv.FormatInt(userTimeout.Milliseconds(), 10)},
	} {
		if _, ok := cc.RuntimeParams[p[0]]; !ok && !strings.Contains(cc.RuntimeParams["options"], p[0]) {
			names, values = append(names, p[0]), append(values, p[1])
		}
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, sessionSQL, names, values)
		if err != nil {
			return fmt.Errorf("failed to set the session's parameters: %w", err)
		}
		return nil
	}
	cc.DialFunc = dialer(cc.ConnectTimeout).DialContext
}

// dialer dials with keepalives and, on TCP, userTimeout.
func dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: keepaliveIdle, Interval: keepaliveInterval, Count: keepaliveCount},
		Control: func(network, _ string, c syscall.RawConn) error { return setUserTimeout(network, c) },
	}
}

// sessionSQL sets the parameters $1 to the values $2, and
// synchronous_commit to on unless it is remote_apply (setSession).
const sessionSQL = `SELECT set_config(n, v, false) FROM unnest($1::text[], $2::text[]) AS p(n, v)
	UNION ALL SELECT set_config('synchronous_commit',
		CASE current_setting('synchronous_commit') WHEN 'remote_apply' THEN 'remote_apply' ELSE 'on' END, false)`

// Shared reports true: other processes may commit to the database.
func (s *Store) Shared() bool { return true }

// Close closes the connections.
func (s *Store) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
		s.closePools()
	}
	return nil
}

// closePools closes both pools' connections.
func (s *Store) closePools() {
	s.pool.Close()
	s.ctl.Close()
}

// ctx bounds one statement.
func (s *Store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.opts.Timeout)
}

// Load reads the log's metadata and head.
func (s *Store) Load(ctx context.Context) (tlog.State, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var st tlog.State
	var vkeys string
	var version int
	err := s.ctl.QueryRow(ctx, `SELECT name, vkeys, mirror, head, (SELECT value FROM sumd_aux WHERE key = $1), `+schemaSQL+` FROM sumd_log WHERE id = 1`, tlog.AuxLostHead).
		Scan(&st.Meta.Name, &vkeys, &st.Meta.Mirror, &st.Head, &st.Lost, &version)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err):
		s.up()
		return tlog.State{}, tlog.ErrNoLog
	case err != nil:
		return tlog.State{}, s.fail("read the log's head", err)
	}
	s.up()
	if version > SchemaVersion {
		return tlog.State{}, newerSchema(version)
	}
	if err := s.awaitDurable(ctx, st.Head); err != nil {
		return tlog.State{}, err
	}
	s.cache.below(tlog.HeadTree(st.Head).N)
	st.Meta.VKeys = strings.Split(vkeys, "\n")
	return st, nil
}

// A barrier is a transaction that writes WAL and commits: under
// synchronous replication its COMMIT returns only once the WAL up to its
// commit record is on the synchronous standbys. It takes a row lock, which
// writes WAL, on sumd_schema's row: FOR KEY SHARE conflicts only with FOR
// UPDATE, which only a migration takes there. (A transaction that merely
// gets an id, SELECT txid_current(), writes no WAL before its commit
// record, and PostgreSQL does not wait for the standbys to commit it.)
type barrier struct {
	n     int // its number: it began after every head read while barriers < n
	start time.Time
	done  chan struct{}
	err   error
}

// awaitDurable returns once head, just read, is known to be durable: on
// every synchronous standby, not only committed on the primary. A COMMIT
// waiting for the standby whose backend is terminated (or a restart of the
// primary) leaves its transaction committed locally and visible to every
// reader, though a failover to the standby would lose it: publishing its
// head would fork every client that saw it. So a head other than the last
// known durable one is adopted only after a barrier that began after it was
// read. While the standby is away the barrier waits, Load fails (with ctx,
// or at once once the barrier has waited longer than Timeout), and the Log
// turns unavailable after MaxHeadAge; one barrier runs at a time, shared by
// every Load waiting, so a standby that never answers ties up one
// connection, not one per refresh.
func (s *Store) awaitDurable(ctx context.Context, head []byte) error {
	need := -1 // the first barrier that began after head was read
	for {
		s.syncMu.Lock()
		if bytes.Equal(head, s.durable) {
			s.syncMu.Unlock()
			return nil
		}
		if need < 0 {
			need = s.barriers + 1
		}
		b := s.barrier
		if b == nil {
			b = s.startBarrier()
		}
		s.syncMu.Unlock()
		if waited := time.Since(b.start); waited > s.opts.Timeout {
			// The standbys are away: fail at once, not after another Timeout.
			return &tlog.UnavailableError{Err: fmt.Errorf("the log's head changed, and the database has not confirmed that it is durable (on every synchronous standby) for %v", waited.Round(time.Second))}
		}
		select {
		case <-b.done:
		case <-ctx.Done():
			return &tlog.UnavailableError{Err: fmt.Errorf("the log's head changed, and the database has not confirmed that it is durable (on every synchronous standby): %w", ctx.Err())}
		}
		if b.n < need {
			continue // began before head was read
		}
		if b.err != nil {
			return b.err
		}
		s.markDurable(head)
		return nil
	}
}

// markDurable records head as durable.
func (s *Store) markDurable(head []byte) {
	s.syncMu.Lock()
	s.durable = bytes.Clone(head)
	s.syncMu.Unlock()
}

// startBarrier starts a barrier; s.syncMu is held.
func (s *Store) startBarrier() *barrier {
	s.barriers++
	b := &barrier{n: s.barriers, start: time.Now(), done: make(chan struct{})}
	s.barrier = b
	go func() {
		err := s.runBarrier()
		s.syncMu.Lock()
		s.barrier = nil
		b.err = err
		close(b.done)
		s.syncMu.Unlock()
	}()
	return b
}

// runBarrier runs one barrier. Its COMMIT has no deadline, as Commit's:
// it waits for the standbys for as long as they take (cancelling the wait
// would commit it on the primary alone, and answer success), until Close.
// If the server cancels the wait (a WARNING with COMMIT's answer), the
// barrier confirms nothing.
func (s *Store) runBarrier() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	slow := time.AfterFunc(s.opts.Timeout, func() {
		s.log.Warn("waiting for the database to confirm that the log's head is durable; a synchronous standby may be away (the head is not adopted meanwhile)")
	})
	defer slow.Stop()
	sctx, scancel := s.ctx(ctx)
	defer scancel()
	conn, err := s.ctl.Acquire(sctx)
	if err != nil {
		return s.fail("connect to confirm the head's durability", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(sctx)
	if err != nil {
		return s.fail("begin a transaction confirming the head's durability", err)
	}
	defer tx.Rollback(context.Background())
	tag, err := tx.Exec(sctx, `SELECT 1 FROM sumd_schema WHERE id = 1 FOR KEY SHARE`)
	if err != nil {
		return s.fail("lock a row confirming the head's durability", err)
	}
	if tag.RowsAffected() != 1 {
		// Locking no row writes no WAL: the COMMIT would not wait for
		// the standbys, and would confirm nothing.
		return fmt.Errorf("failed to confirm the head's durability: sumd_schema has no row to lock (deleted?); restore it: INSERT INTO sumd_schema (id, version) VALUES (1, %d)", SchemaVersion)
	}
	clearWarning(conn.Conn().PgConn())
	if err := tx.Commit(ctx); err != nil {
		return s.fail("commit the transaction confirming the head's durability", err)
	}
	if w := warning(conn.Conn().PgConn()); w != nil {
		return &tlog.UnavailableError{Err: fmt.Errorf("the database did not confirm that the log's head is durable (on every synchronous standby): %w", w)}
	}
	return nil
}

// confirmDurable waits until a barrier that began after a commit of this
// store has committed, which makes the commit durable: its WAL comes
// before the barrier's. Commit calls it when the server answered COMMIT
// with a WARNING, and so may have committed on the primary alone; SetAux
// too, when it read back a value whose COMMIT's answer was lost (warning
// is then that failure). Like
// COMMIT's own wait for the standbys it has no deadline but Close; failed
// barriers are retried for ResolveTimeout, then the outcome is ambiguous.
func (s *Store) confirmDurable(what string, warning error) error {
	s.log.Warn("a commit may be on the primary alone (answered with a warning, such as a cancelled wait for a synchronous standby, or its answer lost); waiting for the database to confirm it durable before acknowledging it",
		"commit", what, "warning", warning)
	s.syncMu.Lock()
	need := s.barriers + 1
	s.syncMu.Unlock()
	var deadline time.Time
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		s.syncMu.Lock()
		b := s.barrier
		if b == nil {
			b = s.startBarrier()
		}
		s.syncMu.Unlock()
		<-b.done // a barrier ends by Close at the latest
		switch {
		case b.n < need:
			continue // began before the commit
		case b.err == nil:
			return nil
		case deadline.IsZero():
			deadline = time.Now().Add(s.opts.ResolveTimeout)
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("failed to %s: the database committed it but warned that it may not be durable (on every synchronous standby), and did not confirm it durable: %w (%w)", what, b.err, warning)
		}
		select {
		case <-time.After(wait):
		case <-s.done:
			return fmt.Errorf("failed to %s: the database committed it but warned that it may not be durable (on every synchronous standby), and the store closed before it confirmed it durable: %w", what, warning)
		}
		need = b.n + 1
	}
}

// Create creates sumd's tables if needed, then the log.
func (s *Store) Create(ctx context.Context, meta tlog.Meta, head []byte) error {
	if len(meta.VKeys) == 0 {
		return fmt.Errorf("%w: a log needs a verifier key", tlog.ErrNotPersisted)
	}
	if err := s.migrate(ctx, true); err != nil {
		return fmt.Errorf("%w: %w", tlog.ErrNotPersisted, err)
	}
	tree := tlog.HeadTree(head)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	tx, err := s.ctl.Begin(ctx)
	if err != nil {
		return notPersisted(s.fail("begin creating the log", err))
	}
	defer tx.Rollback(context.Background())
	// A log whose sumd_log row was deleted leaves its records, index and
	// tiles: a new log must not be created over them. A concurrent Create
	// that commits after this check is found by the insert's conflict.
	var exists, leftover bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM sumd_log),
		EXISTS (SELECT FROM sumd_records) OR EXISTS (SELECT FROM sumd_index) OR EXISTS (SELECT FROM sumd_tiles)`).Scan(&exists, &leftover)
	switch {
	case err != nil:
		return notPersisted(s.fail("check that the tables are empty", err))
	case exists:
		return tlog.ErrLogExists
	case leftover:
		return notPersisted(tlog.ErrLeftoverData)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO sumd_log (id, name, vkeys, mirror, head, tree_size, root)
		VALUES (1, $1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
		meta.Name, strings.Join(meta.VKeys, "\n"), meta.Mirror, head, tree.N, tree.Hash[:])
	switch {
	case err != nil:
		return notPersisted(s.fail("create the log", err))
	case tag.RowsAffected() == 0:
		return tlog.ErrLogExists
	}
	// No deadline on COMMIT, and a WARNING heeded, as Commit's: the log
	// is published once Create returns.
	pc := tx.Conn().PgConn()
	clearWarning(pc)
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		// A lost answer may hide a stored log, which the next open finds
		// (and Load adopts only once a barrier confirms it durable).
		return s.fail("create the log", err)
	}
	s.up()
	if w := warning(pc); w != nil {
		if err := s.confirmDurable("create the log", w); err != nil {
			return err
		}
	}
	s.markDurable(head)
	return nil
}

// Extent reads the head and how far the data reaches in one read-only
// transaction (one snapshot): the highest record id and each level's last
// tile by primary-key seeks, the highest id in the index by a scan of it
// (its key is the module version). Open calls it once.
func (s *Store) Extent(ctx context.Context) (tlog.Extent, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var e tlog.Extent
	tx, err := s.ctl.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return e, s.fail("begin reading the log's extent", err)
	}
	defer tx.Rollback(context.Background())
	err = tx.QueryRow(ctx, `SELECT (SELECT head FROM sumd_log WHERE id = 1),
		coalesce((SELECT max(id) + 1 FROM sumd_records), 0),
		coalesce((SELECT max(id) + 1 FROM sumd_index), 0)`).Scan(&e.Head, &e.Records, &e.Indexed)
	if err != nil {
		return e, s.fail("read the log's extent", err)
	}
	// A level holds tiles only below 2^63 records: levels 0 to 7.
	rows, err := tx.Query(ctx, `SELECT t.level, t.n, length(t.data) FROM generate_series(0, 7) AS q(level)
		CROSS JOIN LATERAL (SELECT level, n, data FROM sumd_tiles WHERE level = q.level ORDER BY n DESC LIMIT 1) AS t
		ORDER BY t.level`)
	if err != nil {
		return e, s.fail("read the last tiles", err)
	}
	var level int16
	var n int64
	var size int
	_, err = pgx.ForEachRow(rows, []any{&level, &n, &size}, func() error {
		e.Tiles = append(e.Tiles, tlog.TileExtent{TileID: tlog.TileID{L: int(level), N: n}, W: size / xtlog.HashSize})
		return nil
	})
	if err != nil {
		return e, s.fail("read the last tiles", err)
	}
	s.up()
	return e, nil
}
