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

// TestSecretOptionValuesNotRepeated: the options that name a secret's file
// (a signing key, a token file, credentials such as bearer:FILE) are where
// an operator pastes the secret itself, and internal/secret never repeats
// such a name; the messages of loading (a flag given twice, a variable
// overriding the file, a YAML list) did, to the terminal or the journal.
func TestSecretOptionValuesNotRepeated(t *testing.T) {
	const secret = "PRIVATE+KEY+sum.example.com+52c14a32+AczMpp86e7p19HVoYkr"
	for _, tc := range []struct {
		name string
		load func(w io.Writer) error
		want string
	}{
		{"serve -key twice", func(w io.Writer) error {
			_, _, err := LoadServe([]string{"-key", secret, "-key", "keys/a.key"}, nil, w)
			return err
		}, "-key given twice"},
		{"status -auth twice", func(w io.Writer) error {
			_, _, err := LoadStatus([]string{"-url", "http://x", "-auth", "bearer:" + secret, "-auth", "bearer:" + secret + "2"}, nil, w)
			return err
		}, "-auth given twice"},
		{"SUMD_UPSTREAM_AUTH over the file's", func(w io.Writer) error {
			_, _, err := LoadServe(nil, []string{"SUMD_UPSTREAM_AUTH=bearer:" + secret, "SUMD_CONFIG=" + writeFile(t, "upstream-auth: bearer:"+secret+"2\n")}, w)
			return err
		}, "SUMD_UPSTREAM_AUTH overrides upstream-auth"},
		{"key as a YAML list", func(w io.Writer) error {
			_, _, err := LoadServe(nil, []string{"SUMD_CONFIG=" + writeFile(t, "key: ["+secret+", keys/b.key]\n")}, w)
			return err
		}, "not a YAML list"},
	} {
		var w strings.Builder
		err := errors.Join(tc.load(&w), errors.New(w.String()))
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "AczMpp86e7p19HVoYkr") {
			t.Errorf("%s: %v\nwant a message saying %q, without the value", tc.name, err, tc.want)
		}
	}
}
