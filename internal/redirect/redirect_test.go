package redirect

import (
	"errors"
	"net/http"
	"testing"
)

func req(t *testing.T, url string) *http.Request {
	r, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer secret")
	return r
}

// TestCheck: https to http is refused, the eleventh redirect too, and the
// credentials stay with their scheme, host and port.
func TestCheck(t *testing.T) {
	for _, c := range []struct {
		from, to string
		err      error
		keep     bool
	}{
		{"https://a.example/x", "http://a.example/y", ErrInsecure, false},
		{"https://a.example/x", "https://a.example:443/y", nil, true},
		{"https://a.example/x", "https://a.example:8443/y", nil, false},
		{"http://a.example/x", "http://a.example:8080/y", nil, false},
		{"http://a.example/x", "https://a.example/y", nil, false},
		{"https://a.example/x", "https://b.example/y", nil, false},
	} {
		r := req(t, c.to)
		err := Check(r, []*http.Request{req(t, c.from)})
		if !errors.Is(err, c.err) || (c.err == nil && (r.Header.Get("Authorization") != "") != c.keep) {
			t.Errorf("%s -> %s: %v, Authorization %q", c.from, c.to, err, r.Header.Get("Authorization"))
		}
	}
	var via []*http.Request
	for range Max {
		via = append(via, req(t, "https://a.example/x"))
	}
	if err := Check(req(t, "https://a.example/y"), via); !errors.Is(err, ErrTooMany) {
		t.Errorf("redirect %d: %v, want ErrTooMany", Max+1, err)
	}
}
