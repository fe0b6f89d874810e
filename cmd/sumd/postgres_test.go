package main

import "testing"

// TestRedact: every secret pgx takes from a connection string — the
// user's password, in the URL's user information or as password=, and
// sslpassword, which decrypts the client key — is masked, however the key
// is spelled, in URLs and in keyword/value strings; the rest is left as
// given.
func TestRedact(t *testing.T) {
	for _, c := range []struct{ db, want string }{
		{"postgres://sumd:SECRET@db/sumd?sslmode=verify-full&sslpassword=SECRET&sslkey=/k.pem",
			"postgres://sumd:xxxxx@db/sumd?sslmode=verify-full&sslpassword=xxxxx&sslkey=/k.pem"},
		{"postgresql://sumd@db1,db2/sumd?password=SECRET&target_session_attrs=read-write",
			"postgresql://sumd@db1,db2/sumd?password=xxxxx&target_session_attrs=read-write"},
		{"postgres://db/sumd?ssl%70assword=SECRET&%20password=SECRET&password",
			"postgres://db/sumd?ssl%70assword=xxxxx&%20password=xxxxx&password"},
		{"host=db password=SECRET sslpassword='SEC RET' dbname=sumd",
			"host=db password=xxxxx sslpassword=xxxxx dbname=sumd"},
		{"host=db password = SECRET", "host=db password=xxxxx"},
		{"data/sumd.db", "data/sumd.db"},
		{"postgres://db:port:SECRET/sumd", "(unparsable PostgreSQL URL)"},
	} {
		if got := redact(c.db); got != c.want {
			t.Errorf("redact(%q) = %q, want %q", c.db, got, c.want)
		}
	}
}
