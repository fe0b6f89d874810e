package access

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/server"
)

// FuzzParseLine: any line parses to a credential that keeps the file
// format's promises, or is refused; nothing panics.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"alice:$2y$05$abc:reader:corp.example/*", "ci:token", "a:b:admin", "a:b::", "x:y:reader:a,b/[", ":::", "a:b:c:d:e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := parseLine(line)
		if err != nil {
			return
		}
		if checkName(c.name) != nil || c.secret == "" || strings.Contains(c.secret, ":") {
			t.Errorf("parseLine(%q) accepted %+v", line, c)
		}
		if c.role < Reader || c.role > Admin || c.patterns != "" && c.role != Reader {
			t.Errorf("parseLine(%q) accepted role %v with patterns %q", line, c.role, c.patterns)
		}
	})
}

// FuzzCredentialFiles: the parsers of whole files never panic, and never
// put a secret in an error. To tell a secret from the other fields, which
// errors may show (names, roles, patterns), the second field of every line
// is replaced with a marker found nowhere else, and no error of the parsers
// may contain it.
func FuzzCredentialFiles(f *testing.F) {
	f.Add([]byte("# c\nci:secret-token-0123456789:reader:corp.example/*\n\nrel:other-token-0123456789:admin\n"))
	f.Add([]byte("a:$2a$04$" + strings.Repeat("x", 53) + "\n"))
	f.Add([]byte("replica:CN=r,O=Corp:auditor\n"))
	f.Add([]byte("0:00A00000:00A00000\nx:y:admin:z\nx:y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseBasicFile(data)
		parseTokenFile(data)
		parseCertFile(data) // subjects are not secret
		if bytes.Contains(data, []byte(secretMarker)) {
			return
		}
		// A secret holding ":" is split: its tail is the role or the
		// patterns, so no field after the name may be shown either.
		for _, planted := range [][]byte{plantSecrets(data, 2), plantSecrets(data, 5)} {
			_, err1 := parseBasicFile(planted)
			_, err2 := parseTokenFile(planted)
			for _, err := range []error{err1, err2} {
				if err != nil && strings.Contains(err.Error(), secretMarker) {
					t.Errorf("credential file %q: error %q shows a secret", planted, err)
				}
			}
		}
	})
}

// FuzzQueryCredentials: a query is refused whenever a parser that splits
// it on both "&" and ";" (as proxies and frameworks may) finds a
// credential's key in it, and nothing panics.
func FuzzQueryCredentials(f *testing.F) {
	for _, s := range []string{"access_token=abc", "access_token=abc;", "x=1;token=abc", "x=1&TOKEN=abc", "%50assword=x",
		"a=%zz&key=1", "x=1;y=token", "api_key", "&&;=", "auth=a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := queryCredentials(raw)
		q, _ := url.ParseQuery(strings.ReplaceAll(raw, ";", "&"))
		for k := range q {
			switch strings.ToLower(k) {
			case "access_token", "token", "auth", "authorization", "password", "passwd", "key", "api_key", "apikey":
				if !got {
					t.Errorf("query %q with the key %q is not refused", raw, k)
				}
			}
		}
	})
}

// secretMarker stands in for every secret in FuzzCredentialFiles.
const secretMarker = "Zq7-SECRET-7qZ"

// plantSecrets replaces the non-empty fields of each line that is not a
// comment from the second (the bcrypt hash or the token) up to but not
// including field end with secretMarker.
func plantSecrets(data []byte, end int) []byte {
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			continue
		}
		fields := bytes.Split(line, []byte(":"))
		for j := 1; j < min(len(fields), end); j++ {
			if len(fields[j]) > 0 {
				fields[j] = []byte(secretMarker)
			}
		}
		lines[i] = bytes.Join(fields, []byte(":"))
	}
	return bytes.Join(lines, []byte("\n"))
}

// spyOps records what the server asks its storage for.
type spyOps struct {
	mu      sync.Mutex
	lookups []module.Version
	reads   int // ReadRecords calls not preceded by a lookup: data tiles
}

func (o *spyOps) Signed(context.Context) ([]byte, error) { return nil, errors.New("no head") }

func (o *spyOps) Lookup(_ context.Context, m module.Version) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lookups = append(o.lookups, m)
	return 0, fs.ErrNotExist
}

func (o *spyOps) ReadRecords(context.Context, int64, int64) ([][]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reads++
	return nil, fs.ErrNotExist
}

func (o *spyOps) ReadTileData(context.Context, tlog.Tile) ([]byte, error) { return nil, fs.ErrNotExist }

// FuzzRoutes checks the layer against the real protocol handler for any
// path: a reader never gets the storage to read records for a data tile,
// and a limited reader never gets it to look up a module outside its
// patterns (which could start an upstream fetch).
func FuzzRoutes(f *testing.F) {
	for _, p := range []string{"/tile/8/data/000", "/sumdb/" + testDB + "/tile/8/data/001.p/4", "/tile/8//data/000",
		"/lookup/example.com/other@v1.0.0", "/lookup/example.com/team/x@v1.0.0", "/sumdb/" + testDB + "/lookup/example.com/!other@v1.0.0",
		"/sumdb/x/../" + testDB + "/tile/8/data/000", "//tile/8/data/000", "/tile/8/data/../0/000"} {
		f.Add(p)
	}
	tokens := "plain:plain-token-0123456789\nteam:team-token-0123456789:reader:example.com/team/*\n"
	s := newSetup(f, Config{Mode: ModeBearer, File: writeSecret(f, f.TempDir(), "tokens", tokens)})
	f.Fuzz(func(t *testing.T, path string) {
		for _, token := range []string{"plain-token-0123456789", "team-token-0123456789"} {
			ops := new(spyOps)
			h := s.layer.Wrap(server.New(testDB, ops, server.Options{Logger: s.logs.Logger()}))
			r := httptest.NewRequest("GET", "/", nil)
			r.URL.Path, r.URL.RawPath = path, ""
			r.Header.Set("Authorization", "Bearer "+token)
			h.ServeHTTP(httptest.NewRecorder(), r)
			if ops.reads > 0 && len(ops.lookups) == 0 {
				t.Errorf("GET %q as a reader read records for a data tile", path)
			}
			for _, m := range ops.lookups {
				if token == "team-token-0123456789" && !module.MatchPrefixPatterns("example.com/team/*", m.Path) {
					t.Errorf("GET %q as a limited reader looked up %v", path, m)
				}
			}
		}
	})
}
