// Package pgtest runs a throwaway PostgreSQL server for tests: the real
// server from the Debian packages (binaries under
// /usr/lib/postgresql/<version>/bin, the newest version installed unless
// $SUMD_TEST_PGBIN names the directory of another), in a temporary
// directory, reached over a unix socket in that directory only, with fsync
// on as in production.
//
// A test package starts at most one server per run: the first test that
// calls [Shared] starts it, and the package's TestMain stops it after m.Run
// (see [Main]). Each test gets a database of its own from
// [Server.NewDatabase], so tests do not see each other's tables.
//
// initdb refuses to run as root. When the tests run as root, the server runs
// as the "postgres" user (or "nobody"), in a directory that user owns.
//
// A machine without the server binaries skips the test locally and fails it
// in CI (internal/testenv); .ci/run installs the postgresql package.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sumd-project/sumd/internal/testenv"
)

// What the tests need, for the messages of testenv.Need.
const what = "PostgreSQL server binaries (Debian package postgresql: initdb, pg_ctl under /usr/lib/postgresql/<version>/bin)"

// A Server is a running PostgreSQL server in a temporary directory.
type Server struct {
	dir  string              // owned by the server's user; holds data/, the socket and log
	bin  string              // directory of initdb, pg_ctl
	cred *syscall.Credential // nil: run as the current user

	mu  sync.Mutex
	dbs int // databases created, for unique names
}

// Bin returns the directory of the server binaries: $SUMD_TEST_PGBIN if
// set (to test another version than the newest installed), else
// /usr/lib/postgresql/<highest>/bin, else the directory of initdb on $PATH.
func Bin() (string, error) {
	if dir := os.Getenv("SUMD_TEST_PGBIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(a) - version(b) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		return "", errors.New("no initdb in /usr/lib/postgresql/*/bin or on $PATH")
	}
	return filepath.Dir(initdb), nil
}

func version(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

// Start initializes and starts a server in a new temporary directory.
func Start() (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sumd-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin}
	if err := s.runAs(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// --auth=trust: only this directory's socket is listened on, and it
	// is the test's own. fsync stays on, as in production.
	if out, err := s.command("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// runAs picks the user the server runs as: initdb and postgres refuse
// root, so as root it is "postgres" (or "nobody"), owning the directory.
func (s *Server) runAs() error {
	if os.Geteuid() != 0 {
		return nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("running as root, and no postgres or nobody user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	return os.Chown(s.dir, uid, gid)
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// command returns the command running the server binary name as the
// server's user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// start starts the server on the initialized directory and waits until it
// accepts connections.
func (s *Server) start() error {
	opts := strings.Join([]string{
		"-k " + s.dir,            // the unix socket lives here
		"-c listen_addresses=''", // and nowhere else
		"-c fsync=on",
		"-c synchronous_commit=on",
		"-c max_connections=200", // several sumd processes with their pools
	}, " ")
	out, err := s.command("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-o", opts, "-w", "-t", "120", "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, s.Log())
	}
	return nil
}

// Stop stops the server: "fast" (roll back every session, checkpoint) or
// "immediate" (as a crash would: the next start replays the WAL).
func (s *Server) Stop(mode string) error {
	out, err := s.command("pg_ctl", "-D", s.data(), "-m", mode, "-w", "-t", "120", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	return nil
}

// Restart starts the server again after Stop.
func (s *Server) Restart() error { return s.start() }

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop("fast")
	return errors.Join(err, os.RemoveAll(s.dir))
}

// Log returns the server's log so far, for failure messages.
func (s *Server) Log() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(data)
}

// URL returns the postgres:// URL of database db on the server, as sumd's
// -db takes it.
func (s *Server) URL(db string) string {
	q := url.Values{"host": {s.dir}, "user": {"postgres"}, "sslmode": {"disable"}}
	return "postgres:///" + db + "?" + q.Encode()
}

// NewDatabase creates an empty database for t and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("t%d_%s", s.dbs, strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())))
	s.mu.Unlock()
	name = name[:min(len(name), 63)]
	if err := s.Exec("postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return s.URL(name)
}

// Exec runs sql in database db.
func (s *Server) Exec(db, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return fmt.Errorf("failed to connect to the test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("failed to run %q: %w", sql, err)
	}
	return nil
}

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Shared returns the package's server, starting it on first use; a machine
// without PostgreSQL skips t locally and fails it in CI. The package's
// TestMain must stop it with Main.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() { shared.s, shared.err = Start() })
	testenv.Need(t, what, shared.err)
	return shared.s
}

// Main runs the package's tests and stops the shared server, if one was
// started, returning m.Run's exit code:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	StopShared()
	return code
}

// StopShared stops the shared server, if one was started: for a TestMain
// that does more than Main.
func StopShared() {
	if shared.s != nil {
		if err := shared.s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
}
