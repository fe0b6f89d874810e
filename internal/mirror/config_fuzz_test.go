package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// auxBytes is an AuxReader holding one mirror configuration.
type auxBytes []byte

func (a auxBytes) Aux(ctx context.Context, key string) ([]byte, error) {
	if key != auxConfig {
		return nil, nil
	}
	return a, nil
}

// FuzzReadConfig: a stored mirror configuration is refused as damage
// (ErrCorrupt) or as a newer sumd's (ErrNewerConfig), with an error naming
// it, or is read as encoding/json reads it and is one that WriteConfig's encoding refuses likewise (too
// large once escaped) or reads back the same,
// ReadWith included: a field serve decides by (credentials remembered, or
// the data once read with them) never changes on the way through.
// Inputs at the size cap are TestConfigSizeCap's, not seeds here (see there).
func FuzzReadConfig(f *testing.F) {
	f.Add([]byte(`{"url":"https://sum.example.com","verifier_keys":["sum.example.com+00000000+AQ"],"auth":"netrc","client_cert":"c.pem","client_key":"k.pem","read_with":"-auth netrc"}`))
	f.Add([]byte(`{"verifier_keys":null,"read_with":"-client-cert c.pem"}`))
	f.Add([]byte(`{"verifier_keys":[],"modules":["example.com/*","go.sum"],"partial":true}`))
	f.Add([]byte(`{"READ_WITH":"x","read_with":""}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"verifier_keys":["k"],"read_with":"-auth netrc","read_with":""}`))
	f.Add([]byte(`{"verifier_keys":["k"],"serve_with":"x"} `))
	f.Add([]byte(`{"verifier_keys":["k",null],"auth":null}{}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		c, err := ReadConfig(ctx, auxBytes(data))
		if err != nil {
			if !strings.Contains(err.Error(), "mirror configuration") {
				t.Fatalf("ReadConfig(%.200q) = %v, naming no mirror configuration", data, err)
			}
			if !errors.Is(err, itlog.ErrCorrupt) && !errors.Is(err, ErrNewerConfig) {
				t.Fatalf("ReadConfig(%.200q) = %v, neither damage nor a newer sumd's", data, err)
			}
			return
		}
		if len(data) > maxConfig {
			t.Fatalf("ReadConfig accepted %d bytes, over maxConfig", len(data))
		}
		if c == nil {
			if data != nil {
				t.Fatalf("ReadConfig(%.200q) = nil", data)
			}
			return
		}
		// What the strict reading accepts, encoding/json reads the same.
		var loose Config
		if err := json.Unmarshal(data, &loose); err != nil || !reflect.DeepEqual(&loose, c) {
			t.Fatalf("ReadConfig(%.200q) = %+v; json.Unmarshal: %+v, %v", data, c, loose, err)
		}
		again, err := encodeConfig(c)
		if err != nil {
			if !strings.Contains(err.Error(), "mirror configuration") {
				t.Fatalf("encodeConfig(%.200v) = %v, naming no mirror configuration", c, err)
			}
			return // refused before it is stored
		}
		c2, err := ReadConfig(ctx, auxBytes(again))
		if err != nil {
			t.Fatalf("ReadConfig(%.200q) = %+v, written as %s, not read back: %v", data, c, again, err)
		}
		// An empty list reads back as none: the same configuration.
		if again2, _ := json.Marshal(c2); string(again2) != string(again) || c2.ReadWith != c.ReadWith || c2.Auth != c.Auth || c2.ClientCert != c.ClientCert {
			t.Fatalf("ReadConfig(%.200q) = %+v, written as %s, read back as %+v", data, c, again, c2)
		}
	})
}
