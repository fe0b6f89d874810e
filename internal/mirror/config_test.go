package mirror

import (
	"context"
	"errors"
	"strings"
	"testing"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestReadConfigStrict: a stored configuration is read only as WriteConfig
// writes it. A field this sumd does not know is refused as a newer sumd's
// (dropping it might serve a private mirror to anyone); anything else sumd
// never writes (a field twice, in other case, null, another type, bytes
// after it, invalid UTF-8, too large) is damage, never read as some other
// configuration.
func TestReadConfigStrict(t *testing.T) {
	const key = `"verifier_keys":["sum.example.com+00000000+AQ"]`
	ctx := context.Background()
	for _, tc := range []struct {
		name, data string
		want       error // nil: accepted
	}{
		{"full", `{"url":"https://sum.example.com",` + key + `,"modules":["a/*","go.sum"],"partial":true,"auth":"netrc","client_cert":"c.pem","client_key":"k.pem","read_with":"-auth netrc"}`, nil},
		{"spaces", " { " + key + " } \n", nil},
		{"no keys", `{"verifier_keys":null}`, nil},
		{"unknown field", `{` + key + `,"serve_with":"-auth netrc"}`, ErrNewerConfig},
		{"duplicate", `{` + key + `,"read_with":"-auth netrc","read_with":""}`, itlog.ErrCorrupt},
		{"other case", `{` + key + `,"READ_WITH":"-auth netrc"}`, itlog.ErrCorrupt},
		{"null", `null`, itlog.ErrCorrupt},
		{"not an object", `["x"]`, itlog.ErrCorrupt},
		{"null string", `{` + key + `,"read_with":null}`, itlog.ErrCorrupt},
		{"null key", `{"verifier_keys":["k",null]}`, itlog.ErrCorrupt},
		{"number", `{` + key + `,"url":1}`, itlog.ErrCorrupt},
		{"trailing", `{` + key + `}{}`, itlog.ErrCorrupt},
		{"trailing garbage", `{` + key + `}x`, itlog.ErrCorrupt},
		{"truncated", `{` + key, itlog.ErrCorrupt},
		{"invalid UTF-8", `{` + key + ",\"client_cert\":\"c\xff.pem\"}", itlog.ErrCorrupt},
		{"too large", `{` + key + `,"url":"` + strings.Repeat("a", maxConfig) + `"}`, itlog.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ReadConfig(ctx, auxBytes(tc.data))
			switch {
			case tc.want == nil && (err != nil || c == nil):
				t.Fatalf("ReadConfig(%.100q) = %v, %v; want a configuration", tc.data, c, err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("ReadConfig(%.100q) = %+v, %v; want %v", tc.data, c, err, tc.want)
			case err != nil && !strings.Contains(err.Error(), "mirror configuration"):
				t.Fatalf("ReadConfig(%.100q) = %v, naming no mirror configuration", tc.data, err)
			}
		})
	}
	_, err := ReadConfig(ctx, auxBytes(`{`+key+`,"serve_with":"-auth netrc"}`))
	if err == nil || !strings.Contains(err.Error(), "serve_with") || !strings.Contains(err.Error(), "upgrade sumd") {
		t.Fatalf("ReadConfig of a newer field = %v; want it named, and to upgrade sumd", err)
	}
}

// TestConfigSizeCap: a stored configuration of maxConfig bytes is read and
// written back the same, one byte more is damage; and WriteConfig's encoding
// refuses a configuration that reads within the cap but that JSON writes
// beyond it (it escapes <, > and & in six bytes), which ReadConfig would then
// refuse. These inputs are here, not in FuzzReadConfig's corpus: the fuzzer
// minimizes each new input it derives from one for up to -fuzzminimizetime
// (60 s by default), each try of a 1 MiB input taking milliseconds, and
// reports no execs meanwhile.
func TestConfigSizeCap(t *testing.T) {
	ctx := context.Background()
	sized := func(n int) string { // a configuration of n bytes
		const frame = `{"verifier_keys":null,"read_with":""}`
		return `{"verifier_keys":null,"read_with":"` + strings.Repeat("a", n-len(frame)) + `"}`
	}
	c, err := ReadConfig(ctx, auxBytes(sized(maxConfig)))
	if err != nil || c == nil {
		t.Fatalf("ReadConfig of maxConfig bytes = %v, %v; want it read", c, err)
	}
	if data, err := encodeConfig(c); err != nil || string(data) != sized(maxConfig) {
		t.Fatalf("encodeConfig of a configuration read from maxConfig bytes = %d bytes, %v; want the same bytes", len(data), err)
	}
	if _, err := ReadConfig(ctx, auxBytes(sized(maxConfig+1))); !errors.Is(err, itlog.ErrCorrupt) {
		t.Fatalf("ReadConfig of maxConfig+1 bytes = %v; want %v", err, itlog.ErrCorrupt)
	}

	escapes := `{"read_with":"` + strings.Repeat("<", maxConfig/6) + `"}`
	c, err = ReadConfig(ctx, auxBytes(escapes))
	if err != nil || c == nil {
		t.Fatalf("ReadConfig of %d bytes = %v, %v; want it read", len(escapes), c, err)
	}
	if data, err := encodeConfig(c); err == nil || !strings.Contains(err.Error(), "mirror configuration") {
		t.Fatalf("encodeConfig of a configuration JSON escapes beyond maxConfig = %d bytes, %v; want it refused, naming the mirror configuration", len(data), err)
	}
}
