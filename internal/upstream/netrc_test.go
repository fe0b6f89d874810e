package upstream

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseNetrc(t *testing.T) {
	const data = `machine proxy.example.com login alice password p1
machine incomplete.example login nobody
# a comment-looking line is just tokens
machine
  multi.example
  login carol
  password p3 account acct
macdef init
machine macro.example login mallory password evil

machine proxy.example.com:8443 login dave password p4
default login anon password anon
machine after.default login x password y
`
	want := []netrcEntry{
		{"proxy.example.com", "alice", "p1"},
		{"multi.example", "carol", "p3"},
		{"proxy.example.com:8443", "dave", "p4"},
	}
	got := parseNetrc(data)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseNetrc = %+v\nwant %+v", got, want)
	}
	for _, tt := range []struct{ url, login string }{
		{"https://proxy.example.com/go", "alice"},
		{"https://proxy.example.com:8443/go", "dave"},
		{"https://proxy.example.com:9999/go", "alice"},
		{"https://macro.example", ""},
		{"https://after.default", ""},
	} {
		u, _ := url.Parse(tt.url)
		e, ok := lookupNetrc(got, u)
		if ok != (tt.login != "") || e.login != tt.login {
			t.Errorf("lookupNetrc(%s) = %+v, %v; want login %q", tt.url, e, ok, tt.login)
		}
	}
}

// FuzzParseNetrc checks that the parser never fails, returns only complete
// entries of single tokens, none a keyword, and reads its own rendering
// back unchanged.
func FuzzParseNetrc(f *testing.F) {
	for _, s := range []string{
		"machine a login b password c", "machine a\nlogin b\npassword c\nmacdef x\nbody\n\nmachine d login e password f",
		"default machine a", "macdef", "machine", "login password machine", "machine a login b password c default",
		"\r\n\tmachine a login b password c\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		entries := parseNetrc(s)
		var b strings.Builder
		for _, e := range entries {
			for _, field := range []string{e.machine, e.login, e.password} {
				switch field {
				case "machine", "login", "password", "account", "macdef", "default":
					t.Fatalf("parseNetrc(%q) gave entry %+v with a keyword for a value", s, e)
				}
				if field == "" || len(strings.Fields(field)) != 1 || strings.Fields(field)[0] != field {
					t.Fatalf("parseNetrc(%q) gave entry %+v with a bad field", s, e)
				}
			}
			b.WriteString("machine " + e.machine + " login " + e.login + " password " + e.password + "\n")
		}
		if again := parseNetrc(b.String()); !reflect.DeepEqual(again, entries) {
			t.Fatalf("parseNetrc of its own rendering = %+v, want %+v", again, entries)
		}
	})
}

// TestNetrcMissingValue: a keyword whose value is missing never takes the
// next keyword, nor what follows it, as its value: a block cut short gets
// no one else's credentials, and the next block keeps its own.
func TestNetrcMissingValue(t *testing.T) {
	for _, data := range []string{
		"machine a.example login x password\nmachine b.example login y password secret-of-b\n",
		"machine a.example login x password machine b.example login y password secret-of-b\n",
		"machine a.example login\npassword\nmachine b.example login y password secret-of-b\n",
		"machine a.example password login y\nmachine b.example login y password secret-of-b\n",
		"machine a.example login x\npassword machine\nb.example login y password secret-of-b\n",
	} {
		got := parseNetrc(data)
		want := []netrcEntry{{"b.example", "y", "secret-of-b"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parseNetrc(%q) = %+v, want %+v", data, got, want)
		}
	}
	// Once a block is complete, later values without a machine go nowhere,
	// as in the go command's parser.
	if got := parseNetrc("machine a.example login x password p password q\n"); !reflect.DeepEqual(got, []netrcEntry{{"a.example", "x", "p"}}) {
		t.Errorf("a second password after a complete block: %+v", got)
	}
}
