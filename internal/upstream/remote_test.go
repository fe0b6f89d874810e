package upstream

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestDiscoveryWaitStopsWithContext: while one cross-check probes
// /sumdb/<name>/supported, which hangs, another waits for the discovery;
// it waited on a mutex whatever its context, so a check whose caller had
// gone (an abandoned flight) held its fetch slot until the probe timed
// out. It now returns when its context ends.
func TestDiscoveryWaitStopsWithContext(t *testing.T) {
	db := newFakeSumDB(t)
	p := newProxy(t)
	p.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/supported") {
			<-r.Context().Done() // until the client gives up
			return true
		}
		return false
	})
	c, err := NewChecker(CheckerOptions{Key: db.vkey, Sources: mustParseList(t, p.url), Timeout: 10 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rec := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: fakeHash("a"), GoMod: fakeHash("b")}
	probing, stopProbe := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- c.Check(probing, rec) }()
	defer func() {
		stopProbe()
		<-first
	}()
	for p.count("/supported") == 0 {
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Check(ctx, rec)
	if took := time.Since(start); took > 5*time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a check whose context ended after 100ms returned after %v with %v; want its context's error at once", took.Round(time.Millisecond), err)
	}
}
