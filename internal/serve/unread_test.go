package serve

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCloseOnErrorHTTP1Only: closeOnError answered an error to an HTTP/2
// request with a body with Connection: close too, which net/http's HTTP/2
// server turns into a GOAWAY of the whole connection, shared by the
// client's other requests; HTTP/2 never reads an unread body before the
// answer, so there was nothing to spare. Only HTTP/1 answers carry it now.
func TestCloseOnErrorHTTP1Only(t *testing.T) {
	h := closeOnError(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "denied", http.StatusUnauthorized)
	}))
	for _, tc := range []struct {
		major int
		want  string
	}{{1, "close"}, {2, ""}} {
		r := httptest.NewRequest("POST", "/admin/add", strings.NewReader("body"))
		r.ProtoMajor, r.ProtoMinor = tc.major, 0
		if tc.major == 1 {
			r.ProtoMinor = 1
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Header().Get("Connection"); got != tc.want {
			t.Errorf("HTTP/%d error to a request with a body: Connection %q, want %q", tc.major, got, tc.want)
		}
	}
}
