package config

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// TestErrorsRedactPasswords: an error quoting a value the operator gave
// (an option given twice, a bad URL) shows
// a PostgreSQL URL or key/value connection string without its password,
// as every other message of sumd does (docs/ha.md).
func TestErrorsRedactPasswords(t *testing.T) {
	const pw = "Sup3rSecretPW"
	for _, tc := range []struct {
		name string
		load func() error
		want string
	}{
		{"serve -db twice", func() error {
			_, _, err := LoadServe([]string{"-db", "postgres://sumd:" + pw + "@db.example/sumd", "-db", "postgres://sumd:" + pw + "@db.example/sumd2"}, nil, io.Discard)
			return err
		}, "postgres://sumd:xxxxx@db.example/sumd"},
		{"copy -from twice", func() error {
			_, _, err := LoadCopy([]string{"-from", "host=db.example password=" + pw + " dbname=sumd", "-from", "postgres://db.example/sumd?password=" + pw, "-to", "x.db"}, nil, io.Discard)
			return err
		}, "password=xxxxx dbname=sumd"},
		{"verify -url", func() error {
			_, _, err := LoadVerify([]string{"-url", "https://user:" + pw + "@sum.example.com/%zz"}, nil, io.Discard)
			return err
		}, "invalid url"},
		{"serve -db twice, sslpassword", func() error {
			_, _, err := LoadServe([]string{"-db", "postgres://sumd@db.example/sumd?sslkey=/k.pem&sslpassword=" + pw, "-db", "x.db"}, nil, io.Discard)
			return err
		}, "sslpassword=xxxxx"},
		{"SUMD_DB over the file's db", func() error {
			var w strings.Builder
			_, _, err := LoadServe(nil, []string{"SUMD_DB=postgres://sumd@db.example/sumd?sslpassword=" + pw, "SUMD_CONFIG=" + writeFile(t, "db: x.db\n")}, &w)
			return errors.Join(err, errors.New(w.String()))
		}, "sslpassword=xxxxx"},
	} {
		err := tc.load()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), pw) {
			t.Errorf("%s: %v\nwant an error saying %q, without the password", tc.name, err, tc.want)
		}
	}
}
