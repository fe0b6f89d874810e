package upstream

import (
	"strings"
	"testing"
)

func TestApplyAuth(t *testing.T) {
	list := "https://a.example/x,https://a.example/y|https://b.example:8443,file:///srv/tree"
	tests := []struct {
		spec string
		want []Auth // per source; nil: an error
		err  string
	}{
		{"", []Auth{{}, {}, {}, {}}, ""},
		// One token or password for sources on two hosts would go to both
		// (a corporate proxy's token to a public one): refused; a .netrc
		// picks by host and stays allowed.
		{"bearer:/t", nil, "one bearer credential for proxies on 2 hosts (a.example, b.example:8443)"},
		{"basic:u:/p", nil, "would send the same credentials to each"},
		{"netrc:/n", []Auth{{AuthNetrc, "", "/n"}, {AuthNetrc, "", "/n"}, {AuthNetrc, "", "/n"}, {AuthNetrc, "", "/n"}}, ""},
		{"none", []Auth{{}, {}, {}, {}}, ""},
		{"a.example=bearer:/t", []Auth{{AuthBearer, "", "/t"}, {AuthBearer, "", "/t"}, {}, {}}, ""},
		{"b.example:8443=basic:u:/p,a.example=none", []Auth{{}, {}, {AuthBasic, "u", "/p"}, {}}, ""},
		{"b.example=bearer:/t", nil, "credentials for b.example, which is not an upstream proxy's host"},
		{"a.example=bearer:/t,a.example=none", nil, "two entries for a.example"},
		{"a.example=magic:x", nil, `entry for a.example: invalid auth kind "magic"`},
		{"=bearer:/t", nil, `malformed entry "=bearer:/t": want HOST=AUTH`},
		{"a.example=bearer:/t,", nil, `malformed entry "": want HOST=AUTH`},
		{"magic", nil, `invalid auth kind "magic"`},
	}
	for _, tt := range tests {
		srcs, err := ParseList(list)
		if err != nil {
			t.Fatal(err)
		}
		err = ApplyAuth(srcs, tt.spec)
		if tt.want == nil {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ApplyAuth(%q) = %v, want %q", tt.spec, err, tt.err)
			}
			for _, s := range srcs {
				if s.Auth != (Auth{}) {
					t.Errorf("ApplyAuth(%q) failed but set %s's auth", tt.spec, s.URL)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("ApplyAuth(%q): %v", tt.spec, err)
			continue
		}
		for i, s := range srcs {
			if s.Auth != tt.want[i] {
				t.Errorf("ApplyAuth(%q): %s gets %+v, want %+v", tt.spec, s.URL, s.Auth, tt.want[i])
			}
		}
	}
}

// FuzzApplyAuth: any -upstream-auth value is refused, or gives every source
// a well-formed Auth that ParseAuth would accept back from its String, and
// no source outside the hosts it names gets credentials.
// TestApplyAuthOneHost: one token or password for proxies all on one host
// (and file:// trees, which take none) is that host's.
func TestApplyAuthOneHost(t *testing.T) {
	srcs, err := ParseList("https://a.example/x|https://a.example/y,file:///srv/tree")
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyAuth(srcs, "bearer:/t"); err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		if s.Auth != (Auth{AuthBearer, "", "/t"}) {
			t.Errorf("%s gets %+v, want the bearer token", s.URL, s.Auth)
		}
	}
}

func FuzzApplyAuth(f *testing.F) {
	for _, s := range []string{"", "none", "bearer:/t", "basic:u:/p", "netrc:/n", "a.example=bearer:/t,b.example:8443=netrc:/n", "a.example=basic:u:p:q", "=,=", "a.example=none,a.example=none"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		srcs, err := ParseList("https://a.example,https://b.example:8443|file:///srv/tree")
		if err != nil {
			t.Fatal(err)
		}
		if ApplyAuth(srcs, spec) != nil {
			return
		}
		for _, s := range srcs {
			a := s.Auth
			if a.Kind == AuthNone {
				continue
			}
			if a.File == "" || a.Kind == AuthBasic && a.User == "" {
				t.Fatalf("ApplyAuth(%q) gave %s the incomplete %+v", spec, s.URL, a)
			}
			if strings.Contains(spec, "=") && !strings.Contains(spec, strings.TrimPrefix(strings.TrimPrefix(s.URL, "https://"), "file://")+"=") {
				t.Fatalf("ApplyAuth(%q) gave %s, which it does not name, %+v", spec, s.URL, a)
			}
			if back, err := ParseAuth(a.String()); a.Kind != AuthNetrc && (err != nil || back != a) {
				t.Fatalf("ParseAuth(%q) = %+v, %v; want %+v", a.String(), back, err, a)
			}
		}
	})
}

// FuzzParseAuth: ParseAuth never panics, and what it accepts names a file
// for every kind that needs one.
func FuzzParseAuth(f *testing.F) {
	for _, s := range []string{"", "none", "none:x", "basic:u:/p", "basic::/p", "basic:u:", "bearer:", "bearer:/t", "netrc", "netrc:/n", "x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuth(s)
		if err != nil {
			return
		}
		switch a.Kind {
		case AuthNone:
			if a != (Auth{}) {
				t.Fatalf("ParseAuth(%q) = %+v", s, a)
			}
		case AuthBasic, AuthBearer:
			if a.File == "" || a.Kind == AuthBasic && a.User == "" {
				t.Fatalf("ParseAuth(%q) = %+v: incomplete", s, a)
			}
		case AuthNetrc:
		default:
			t.Fatalf("ParseAuth(%q) = kind %q", s, a.Kind)
		}
	})
}
