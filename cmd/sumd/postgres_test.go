package main

import (
	"bytes"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/pgtest"
)

// TestRedact: every secret pgx takes from a connection string — the
// user's password, in the URL's user information or as password=, and
// sslpassword, which decrypts the client key — is masked, however the key
// is spelled, in URLs and in keyword/value strings; the rest is left as
// given.
func TestRedact(t *testing.T) {
	for _, c := range []struct{ db, want string }{
		{"postgres://sumd:SECRET@db/sumd?sslmode=verify-full&sslpassword=SECRET&sslkey=/k.pem",
			"postgres://sumd:xxxxx@db/sumd?sslmode=verify-full&sslpassword=xxxxx&sslkey=/k.pem"},
		{"postgresql://sumd@db1,db2/sumd?password=SECRET&target_session_attrs=read-write",
			"postgresql://sumd@db1,db2/sumd?password=xxxxx&target_session_attrs=read-write"},
		{"postgres://db/sumd?ssl%70assword=SECRET&%20password=SECRET&password",
			"postgres://db/sumd?ssl%70assword=xxxxx&%20password=xxxxx&password"},
		{"host=db password=SECRET sslpassword='SEC RET' dbname=sumd",
			"host=db password=xxxxx sslpassword=xxxxx dbname=sumd"},
		{"host=db password = SECRET", "host=db password=xxxxx"},
		{`host=db password=SEC\ RET sslpassword='SEC\' RET' dbname=sumd`, "host=db password=xxxxx sslpassword=xxxxx dbname=sumd"},
		{"data/sumd.db", "data/sumd.db"},
		{"postgres://db:port:SECRET/sumd", "(unparsable PostgreSQL URL)"},
	} {
		if got := redact(c.db); got != c.want {
			t.Errorf("redact(%q) = %q, want %q", c.db, got, c.want)
		}
	}
}

// TestAddCreateRefusedPostgres: sumd add -create -gosum on a PostgreSQL
// database, refused after it created the log (-strict), removes that
// new, empty log, as it removes a new bbolt file: a later sumd add
// without -create finds no log. The tables stay (migrate does not say
// whether this run made them), which a later -create uses.
func TestAddCreateRefusedPostgres(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	db := pgtest.Shared(t).NewDatabase(t)
	rec := verifyRecord("refused", 1)
	_, mod, _ := strings.Cut(string(rec.Text()), "\n")
	oneLine := writeFile(t, filepath.Join(dir, "one.sum"), []byte(mod))
	good := writeFile(t, filepath.Join(dir, "good.sum"), verifyRecord("good", 1).Text())
	out, errOut, err := sumdRun(t, "add", "-create", "-db", db, "-key", l.key, "-strict", "-gosum", oneLine)
	if statusOf(err) != 1 || !strings.Contains(errOut, "nothing was added") {
		t.Fatalf("sumd add -create -strict: %v\n%s%s\nwant it refused", err, out, errOut)
	}
	out, errOut, err = sumdRun(t, "add", "-db", db, "-key", l.key, "-gosum", good)
	if statusOf(err) != 1 || !strings.Contains(errOut, "holds no log") {
		t.Fatalf("sumd add after a refused sumd add -create: %v\n%s%s\nwant it refused: the refused run left no log", err, out, errOut)
	}
	if out := sumd(t, "add", "-create", "-db", db, "-key", l.key, "-gosum", good); !strings.Contains(out, "added 1 records") {
		t.Errorf("sumd add -create after the refused one: %s\nwant the record added to a new log", out)
	}
}

// TestAddGoSumDiscardKeepsUsedPostgresLog: a refused sumd add -create
// on PostgreSQL keeps the log it created if another writer added to it
// meanwhile (no lock keeps one out, as bbolt's does), saying why.
func TestAddGoSumDiscardKeepsUsedPostgresLog(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	db := pgtest.Shared(t).NewDatabase(t)
	good := writeFile(t, filepath.Join(dir, "good.sum"), verifyRecord("good", 1).Text())
	cfg := &config.Add{Database: config.Database{DB: db, Key: l.key}, Creating: config.Creating{Create: true}}
	var stderr bytes.Buffer
	sink, err := openLogSink(cfg, slog.New(slog.DiscardHandler), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	sumd(t, "add", "-db", db, "-key", l.key, "-gosum", good) // another writer, meanwhile
	sink.discard()
	sink.close()
	if !strings.Contains(stderr.String(), "kept") {
		t.Errorf("the refused run said %q, want why it kept the log", stderr.String())
	}
	if out := sumd(t, "add", "-db", db, "-key", l.key, "-gosum", good); !strings.Contains(out, "1 already present") {
		t.Errorf("after the refused run: %s\nwant the other writer's record kept", out)
	}
}

// TestPostgresPrivilegeHints: a role the database refuses what sumd needs
// of it — creating tables (no CREATE on the schema), writing to them (a
// read-only role: every command confirms the head with a row lock on
// sumd_schema) — and a search_path naming no schema get a hint saying
// what sumd needs, not PostgreSQL's bare refusal.
func TestPostgresPrivilegeHints(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	pg := pgtest.Shared(t)
	db := pg.NewDatabase(t)
	name := strings.TrimPrefix(strings.Split(db, "?")[0], "postgres:///")
	as := func(role string) string { return strings.Replace(db, "user=postgres", "user="+role, 1) }
	good := writeFile(t, filepath.Join(dir, "good.sum"), verifyRecord("good", 1).Text())
	for _, stmt := range []string{`CREATE ROLE hint_nocreate LOGIN`, `CREATE ROLE hint_reader LOGIN`} {
		if err := pg.Exec(name, stmt); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ db, create, want string }{
		{as("hint_nocreate"), "-create", "CREATE on the schema"},
		{db + "&search_path=nosuch", "-create", "search_path"},
	} {
		_, errOut, err := sumdRun(t, "add", c.create, "-db", c.db, "-key", l.key, "-gosum", good)
		if statusOf(err) != 1 || !strings.Contains(errOut, "hint:") || !strings.Contains(errOut[strings.Index(errOut, "hint:"):], c.want) {
			t.Errorf("sumd add %s -db %s: %v\n%s\nwant a hint naming %q", c.create, c.db, err, errOut, c.want)
		}
	}
	sumd(t, "add", "-create", "-db", db, "-key", l.key, "-gosum", good)
	if err := pg.Exec(name, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO hint_reader`); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := sumdRun(t, "add", "-db", as("hint_reader"), "-key", l.key, "-gosum", good)
	if statusOf(err) != 1 || !strings.Contains(errOut, "hint:") || !strings.Contains(errOut[strings.Index(errOut, "hint:"):], "UPDATE") {
		t.Errorf("sumd add as a role that may only read: %v\n%s\nwant a hint naming the privileges sumd needs", err, errOut)
	}
}

// TestAddCreateRefusedPostgresWarnsOnce: a refused sumd add -create on a
// PostgreSQL URL that does not verify the server's certificate (here a
// fallback host, 192.0.2.1, never reached) warns of it once, where the
// removal of the new log, opening the database again, warned a second
// time.
func TestAddCreateRefusedPostgresWarnsOnce(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	db := pgtest.Shared(t).NewDatabase(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("host", q.Get("host")+",192.0.2.1")
	u.RawQuery = q.Encode()
	rec := verifyRecord("refused", 1)
	_, mod, _ := strings.Cut(string(rec.Text()), "\n")
	oneLine := writeFile(t, filepath.Join(dir, "one.sum"), []byte(mod))
	out, errOut, err := sumdRun(t, "add", "-create", "-db", u.String(), "-key", l.key, "-strict", "-gosum", oneLine)
	if statusOf(err) != 1 || !strings.Contains(errOut, "nothing was added") {
		t.Fatalf("sumd add -create -strict: %v\n%s%s\nwant it refused", err, out, errOut)
	}
	if n := strings.Count(errOut, "does not verify the server's certificate"); n != 1 {
		t.Errorf("sumd add -create -strict warned %d times of the unverified certificate, want once:\n%s", n, errOut)
	}
}

// TestSchemaVersionLostHint: sumd's tables without their schema version
// (sumd_schema's row deleted by hand) are refused with a hint to restore
// the version as the error says, or the database from a backup, where
// sumd copy and the other commands gave the fallback hint of a server
// not reachable, which it was.
func TestSchemaVersionLostHint(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	pg := pgtest.Shared(t)
	db := pg.NewDatabase(t)
	name := strings.TrimPrefix(strings.Split(db, "?")[0], "postgres:///")
	good := writeFile(t, filepath.Join(dir, "good.sum"), verifyRecord("good", 1).Text())
	sumd(t, "add", "-create", "-db", db, "-key", l.key, "-gosum", good)
	if err := pg.Exec(name, `DELETE FROM sumd_schema`); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"copy", "-from", db, "-to", filepath.Join(dir, "copy.db")},
		{"add", "-db", db, "-key", l.key, "-gosum", good},
	} {
		_, errOut, err := sumdRun(t, args...)
		_, hint, _ := strings.Cut(errOut, "hint:")
		if statusOf(err) != 1 || !strings.Contains(hint, "sumd_schema") || strings.Contains(hint, "reachable") {
			t.Errorf("sumd %s on tables without their schema version: %v\n%s\nwant a hint to restore sumd_schema", args[0], err, errOut)
		}
	}
}
