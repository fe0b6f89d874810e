package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestCrossCheckHugeTree: a public database whose head, signed with its
// key, claims 2^62 records or more (x/mod's client never returns from
// the proofs of such a tree) fails the check at once instead of holding a
// core and the lookup for ever.
func TestCrossCheckHugeTree(t *testing.T) {
	s := newCheckedSetup(t, CheckerOptions{})
	s.db.add(t, otherRecord(0), s.right)
	signer, err := note.NewSigner(s.db.skey)
	if err != nil {
		t.Fatal(err)
	}
	huge, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: sumdbclient.MaxTreeSize + 1}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	honest := s.db.handler
	answer := regexp.MustCompile(`(?s)^(\d+\n.*?\n\n).*$`)
	s.db.mu.Lock()
	s.db.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		honest.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		switch {
		case strings.HasSuffix(r.URL.Path, "/latest"):
			body = huge
		case strings.Contains(r.URL.Path, "/lookup/"):
			body = append(answer.ReplaceAll(body, []byte("$1")), huge...)
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
	s.db.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- s.rec.checker.Check(context.Background(), s.right) }()
	select {
	case err := <-done:
		if e := asError(t, err); e.HTTPStatus() != 502 || !strings.Contains(e.Detail(), "broken or compromised database") {
			t.Errorf("check against a database claiming 2^62 records: %v (status %d, detail %s)", e, e.HTTPStatus(), e.Detail())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the check is still running after 20 s")
	}
}
