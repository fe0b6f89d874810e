package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// busyFront answers the first n requests with status and the header
// Retry-After: retry (if not ""), as a load balancer in front of a
// restarting sumd or a busy log does, and passes the rest to h. It counts
// every request.
type busyFront struct {
	h      http.Handler
	n      int32
	status int
	retry  string
	seen   atomic.Int32
}

func (b *busyFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.seen.Add(1) <= b.n {
		if b.retry != "" {
			w.Header().Set("Retry-After", b.retry)
		}
		http.Error(w, "try later", b.status)
		return
	}
	b.h.ServeHTTP(w, r)
}

// retrySetup puts front before a real admin API and returns a client whose
// waits are recorded instead of slept.
func retrySetup(t *testing.T, front *busyFront) (*setup, *Client, *[]time.Duration) {
	s := newSetup(t, Options{})
	front.h = s.srv.Config.Handler
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	var waits []time.Duration
	c := &Client{URL: srv.URL, Token: testToken, sleep: func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}}
	return s, c, &waits
}

// TestAddRetriesBusy: an add answered 503 (or 429) is sent again
// after the answer's Retry-After, or 1, 2, 4 s without one, and the lines
// are recorded once; a client gives up after four attempts with the last
// answer.
func TestAddRetriesBusy(t *testing.T) {
	ctx := context.Background()
	recs := []gosum.Record{fakeRec(0, ""), fakeRec(1, "")}
	for _, tc := range []struct {
		name      string
		status    int
		retry     string
		busy      int32
		wantWaits []time.Duration
		wantErr   int
	}{
		{"503 with Retry-After", http.StatusServiceUnavailable, "7", 2, []time.Duration{7 * time.Second, 7 * time.Second}, 0},
		{"503 backs off", http.StatusServiceUnavailable, "", 3, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, 0},
		{"429, a long Retry-After capped", http.StatusTooManyRequests, "3600", 1, []time.Duration{maxRetryWait}, 0},
		{"503 gives up after four", http.StatusServiceUnavailable, "", 10, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, http.StatusServiceUnavailable},
		{"502 is not retried", http.StatusBadGateway, "1", 1, nil, http.StatusBadGateway},
		{"504 is not retried", http.StatusGatewayTimeout, "", 1, nil, http.StatusGatewayTimeout},
		{"500 is not retried", http.StatusInternalServerError, "1", 1, nil, http.StatusInternalServerError},
		{"401 is not retried", http.StatusUnauthorized, "", 1, nil, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := &busyFront{n: tc.busy, status: tc.status, retry: tc.retry}
			s, c, waits := retrySetup(t, front)
			res, err := c.Add(ctx, recs, false)
			if !slices.Equal(*waits, tc.wantWaits) {
				t.Errorf("waits = %v, want %v", *waits, tc.wantWaits)
			}
			if tc.wantErr != 0 {
				var ae *Error
				if !errors.As(err, &ae) || ae.Status != tc.wantErr {
					t.Fatalf("Add = %v, %v; want a %d", res, err, tc.wantErr)
				}
				if n := s.log.Published().Tree.N; n != 0 {
					t.Errorf("tree size %d after a refused add, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.New != 2 || res.TreeSize != 2 {
				t.Errorf("Add = %+v, want 2 new records, tree size 2", *res)
			}
			if got, want := front.seen.Load(), tc.busy+1; got != want {
				t.Errorf("%d requests, want %d", got, want)
			}
		})
	}
}

// TestFetchRetryStopsWithContext: a wait between attempts ends with the
// caller's context, naming the answer that asked for it.
func TestFetchRetryStopsWithContext(t *testing.T) {
	front := &busyFront{n: 10, status: http.StatusServiceUnavailable, retry: "5"}
	s := newSetup(t, Options{})
	front.h = s.srv.Config.Handler
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	c := &Client{URL: srv.URL, Token: testToken}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Fetch(ctx, module.Version{Path: "example.com/m", Version: "v1.0.0"})
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch = %v, want the 503 and the context's end", err)
	}
	if n := front.seen.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
