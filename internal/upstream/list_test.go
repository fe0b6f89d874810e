package upstream

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want string // FormatList of the result
	}{
		{"https://proxy.example.com", "https://proxy.example.com"},
		{"https://proxy.example.com/go/", "https://proxy.example.com/go"},
		{" proxy.example.com/go , http://127.0.0.1:3000|file:///srv/goproxy ", "https://proxy.example.com/go,http://127.0.0.1:3000|file:///srv/goproxy"},
		{"https://a.example,,https://b.example|", "https://a.example,https://b.example"},
		{"localhost:3000", "https://localhost:3000"},
	}
	for _, tt := range tests {
		srcs, err := ParseList(tt.in)
		if err != nil {
			t.Errorf("ParseList(%q): %v", tt.in, err)
			continue
		}
		if got := FormatList(srcs); got != tt.want {
			t.Errorf("ParseList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	srcs, _ := ParseList("https://a.example|https://b.example,https://c.example")
	if !srcs[0].FallBackOnError || srcs[1].FallBackOnError || srcs[2].FallBackOnError {
		t.Errorf("separators: %+v", srcs)
	}
}

func TestParseListRefusals(t *testing.T) {
	tests := map[string]string{
		"":                                   "list is empty",
		" , |":                               "list is empty",
		"direct":                             `"direct" is not supported`,
		"https://proxy.example.com,direct":   `"direct" is not supported`,
		"off":                                `"off" is not supported`,
		"noproxy":                            "want an https://, http:// or file:// URL",
		"ftp://proxy.example.com":            `scheme "ftp" is not supported`,
		"https://user:hunter2@proxy.example": "credentials in the URL are not allowed",
		"https://proxy.example.com/?x=1":     "no query or fragment",
		"https://proxy.example.com/#x":       "no query or fragment",
		"file://host/srv/goproxy":            "want file:///absolute/path",
		"/srv/goproxy":                       `scheme "" is not supported`,
		"https:///path":                      "no host",
	}
	for in, want := range tests {
		_, err := ParseList(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseList(%q) = %v, want an error containing %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseList(%q) error shows the password: %v", in, err)
		}
	}
	if _, err := ParseList("https://user:hun ter2@bad host"); err == nil || strings.Contains(err.Error(), "hun ter2") {
		t.Errorf("ParseList of an unparsable URL with a password: %v", err)
	}
}

// FuzzParseList checks that whatever ParseList accepts is a list of usable
// base URLs without credentials, and that FormatList gives it back.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		"https://proxy.golang.org,direct", "a.example|b.example,file:///x", "https://u:p@h", "http://[::1]:80/x/",
		"https://h/%2C", "https://h/a b", "file:///C:/x", " , ,|", "https://h/?", "https://h#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		srcs, err := ParseList(s)
		if err != nil {
			return
		}
		for _, src := range srcs {
			u, err := url.Parse(src.URL)
			if err != nil || u.User != nil || strings.HasSuffix(src.URL, "/") || strings.ContainsAny(src.URL, ",|") {
				t.Fatalf("ParseList(%q) gave unusable URL %q (%v)", s, src.URL, err)
			}
			if checkSource(src) != nil {
				t.Fatalf("ParseList(%q) gave %q, which checkSource refuses: %v", s, src.URL, checkSource(src))
			}
		}
		again, err := ParseList(FormatList(srcs))
		if err != nil || !reflect.DeepEqual(again, srcs) {
			t.Fatalf("ParseList(FormatList(ParseList(%q))) = %+v, %v; want %+v", s, again, err, srcs)
		}
	})
}
