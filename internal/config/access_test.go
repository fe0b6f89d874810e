package config

import (
	"io"
	"strings"
	"testing"
)

// TestAccessOptions: the access options are checked together with the
// rest of sumd serve's configuration, each problem naming its option.
func TestAccessOptions(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" for valid
	}{
		{[]string{"-read-auth", "basic", "-read-auth-file", "htpasswd"}, ""},
		{[]string{"-read-auth", "bearer", "-read-auth-file", "tokens", "-admin-listen", "127.0.0.1:8081", "-metrics-listen", ":9090"}, ""},
		{[]string{"-tls-cert", "c", "-tls-key", "k", "-tls-client-ca", "ca.pem", "-tls-client-roles", "roles", "-tls-client-auth", "verify-if-given"}, ""},
		{[]string{"-read-auth", "digest"}, `invalid read-auth "digest": want none, basic or bearer`},
		{[]string{"-read-auth", "basic"}, "read-auth basic needs -read-auth-file"},
		{[]string{"-read-auth-file", "htpasswd"}, "read-auth-file is set, but read-auth is none"},
		{[]string{"-tls-client-ca", "ca.pem", "-tls-client-roles", "roles"}, "tls-client-ca needs -tls-cert and -tls-key"},
		{[]string{"-tls-cert", "c", "-tls-key", "k", "-tls-client-ca", "ca.pem"}, "tls-client-ca needs -tls-client-roles"},
		{[]string{"-tls-client-roles", "roles"}, "tls-client-roles needs -tls-client-ca"},
		{[]string{"-tls-client-auth", "optional"}, `invalid tls-client-auth "optional"`},
		{[]string{"-admin-listen", "127.0.0.1:8080"}, "admin-listen 127.0.0.1:8080 is another listener's address"},
		{[]string{"-admin-listen", ":9090", "-metrics-listen", ":9090"}, "metrics-listen :9090 is another listener's address"},
		{[]string{"-metrics-listen", "nonsense"}, `metrics-listen: invalid listen address "nonsense"`},
		{[]string{"-read-listen", "127.0.0.1:8082", "-metrics-listen", "127.0.0.1:9090", "-allowed-hosts", "sumd.corp.example"}, ""},
		{[]string{"-read-listen", "127.0.0.1:8080"}, "read-listen 127.0.0.1:8080 is another listener's address"},
		{[]string{"-metrics-listen", ":9090", "-read-listen", ":9090"}, "read-listen :9090 is another listener's address"},
		{[]string{"-read-listen", "nonsense"}, `read-listen: invalid listen address "nonsense"`},
		{[]string{"-read-listen", ":8082", "-read-auth", "bearer", "-read-auth-file", "tokens"}, "read-listen serves everyone without credentials: not with -read-auth"},
		{[]string{"-read-listen", ":8082", "-tls-cert", "c", "-tls-key", "k", "-tls-client-ca", "ca.pem", "-tls-client-roles", "roles"}, "read-listen serves everyone without credentials"},
		{[]string{"-allowed-hosts", "sumd.corp.example, *.mirrors.corp.example,SUMD2.corp.example."}, ""},
		{[]string{"-allowed-hosts", "https://sumd.corp.example"}, `allowed-hosts: "https://sumd.corp.example" is not a host name`},
		{[]string{"-allowed-hosts", "sumd.corp.example:8443"}, `allowed-hosts: "sumd.corp.example:8443" is not a host name`},
		{[]string{"-allowed-hosts", "*"}, `allowed-hosts: "*" is not a host name`},
		{[]string{"-allowed-hosts", "a..b"}, `allowed-hosts: "a..b" is not a host name`},
	} {
		_, _, err := LoadServe(c.args, nil, io.Discard)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
	if hosts, err := ParseAllowedHosts(" sumd.corp.example, *.Mirrors.corp.example. ,"); err != nil || strings.Join(hosts, " ") != "sumd.corp.example *.mirrors.corp.example" {
		t.Errorf("ParseAllowedHosts = %q, %v", hosts, err)
	}
	c, _, err := LoadServe(nil, []string{"SUMD_READ_AUTH=bearer", "SUMD_READ_AUTH_FILE=/etc/sumd/tokens"}, io.Discard)
	if err != nil || c.ReadAuth != ReadAuthBearer || c.ReadAuthFile != "/etc/sumd/tokens" || c.TLSClientAuth != ClientAuthRequire {
		t.Errorf("from the environment: %+v, %v", c.Access, err)
	}
}

// TestClientCertValidate: a client certificate and its key go together.
func TestClientCertValidate(t *testing.T) {
	for _, tc := range []struct {
		cert, key, want string
	}{
		{"", "", ""},
		{"hc.pem", "hc.key", ""},
		{"hc.pem", "", "client-cert needs -client-key"},
		{"", "hc.key", "client-key needs -client-cert"},
	} {
		err := (&ClientCert{ClientCert: tc.cert, ClientKey: tc.key}).Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ClientCert{%q, %q}.Validate() = %v, want %q", tc.cert, tc.key, err, tc.want)
		}
	}
}
