package access

import "testing"

// TestDescribeAdmin: the start-up log says who may use the admin API, not
// just that it is served: with a credential file it is served even while
// no credential in it has the admin role (the file is read again when it
// changes), which a bare admin_api=true made look like a mistake.
func TestDescribeAdmin(t *testing.T) {
	dir := t.TempDir()
	users := writeSecret(t, dir, "users", "reader:"+bcryptOf(t, readerPass)+"\n")
	token := writeSecret(t, dir, "admin.token", "0123456789abcdef0123456789abcdef\n")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"off", Config{Mode: ModeBasic, File: users}, "off"},
		{"token", Config{AdminTokenFile: token, AdminAPI: true}, "the admin token (" + token + ")"},
		{"credential file", Config{Mode: ModeBasic, File: users, AdminAPI: true},
			"credentials with the admin role in " + users + " (read again when it changes: an admin added there needs no restart)"},
		{"both", Config{Mode: ModeBasic, File: users, AdminTokenFile: token, AdminAPI: true},
			"the admin token (" + token + "), credentials with the admin role in " + users + " (read again when it changes: an admin added there needs no restart)"},
	} {
		if got := newSetup(t, tc.cfg).layer.DescribeAdmin(); got != tc.want {
			t.Errorf("%s: DescribeAdmin() = %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
