package oci

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	fuzzDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fuzzHash   = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
)

// TestStateMalformedFields: a state whose fields are not what sync writes
// (hand-edited, or damaged into JSON that still parses) is damaged
// (ErrStateDamaged), dropped, as a state that does not parse is: a
// conflict's hashes that are not go.sum hashes would otherwise be compared
// with the log on every pass, reporting a conflict with garbage without
// fetching the layers, and a resume point that names no tag resumes
// nowhere.
func TestStateMalformedFields(t *testing.T) {
	ctx := context.Background()
	entry := func(fields string) string {
		return `{"version":1,"repositories":{"r.example.com/m":{"v1.0.0":{"digest":"` + fuzzDigest + `","module":"example.com/m@v1.0.0"` + fields + `}}}}`
	}
	for name, data := range map[string]string{
		"conflict hash":       entry(`,"conflict":{"digest":"` + fuzzDigest + `","hash":"garbage","gomod":"` + fuzzHash + `"}`),
		"conflict gomod":      entry(`,"conflict":{"digest":"` + fuzzDigest + `","hash":"` + fuzzHash + `","gomod":""}`),
		"conflict no digest":  entry(`,"conflict":{"digest":"","hash":"` + fuzzHash + `","gomod":"` + fuzzHash + `"}`),
		"resume without tag":  `{"version":1,"repositories":{},"resume":"r.example.com/m"}`,
		"resume empty tag":    `{"version":1,"repositories":{},"resume":"r.example.com/m:"}`,
		"resume empty repo":   `{"version":1,"repositories":{},"resume":":v1.0.0"}`,
		"problem no failure":  `{"version":1,"repositories":{},"problems":{"r.example.com/m":{"v1.0.0":"unsigned"}}}`,
		"problem no repo":     `{"version":1,"repositories":{},"problems":{"":{"v1.0.0":"error"}}}`,
		"refused not refused": `{"version":1,"repositories":{},"refused_artifacts":{"r.example.com/m":{"v1.0.0":"unsigned"}}}`,
		"refused failed":      `{"version":1,"repositories":{},"refused_artifacts":{"r.example.com/m":{"v1.0.0":"error"}}}`,
		"refused no repo":     `{"version":1,"repositories":{},"refused_artifacts":{"":{"v1.0.0":"tampered"}}}`,
		"refused repository":  `{"version":1,"repositories":{},"refused_artifacts":{"r.example.com/m":{"":"tampered"}}}`,
		"too large":           `{"version":1,"repositories":{},"resume":"r.example.com/m:v1","x":"` + strings.Repeat("x", maxStateSize) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			log := newFakeLog()
			log.aux[stateKey] = []byte(data)
			s, err := LoadState(ctx, log)
			if !errors.Is(err, ErrStateDamaged) || s == nil || len(s.data.Repositories) != 0 || s.data.Resume != "" {
				t.Fatalf("LoadState = %v; want an empty state and ErrStateDamaged", err)
			}
		})
	}
}

// FuzzLoadState: a stored sync state is dropped as damaged (an empty
// state and ErrStateDamaged), or is one that Save writes and LoadState
// reads back the same, every field sync reads of it (the optional
// invalid, conflict, resume, problems and refused artifacts included) well
// formed; a state without the optional fields (an older sumd's) loads.
func FuzzLoadState(f *testing.F) {
	full := `{"version":1,"repositories":{"r.example.com:5000/m":{"v1.0.0":{"digest":"` + fuzzDigest + `","module":"example.com/m@v1.0.0",` +
		`"mod":{"digest":"` + fuzzDigest + `","size":10},"zip":{"digest":"` + fuzzDigest + `","size":20},"retagged":"` + fuzzDigest + `",` +
		`"invalid":"` + fuzzDigest + `","conflict":{"digest":"` + fuzzDigest + `","hash":"` + fuzzHash + `","gomod":"` + fuzzHash + `"}}}},` +
		`"resume":"r.example.com:5000/m:v1.0.0","problems":{"r.example.com:5000/m":{"":"error","v1.0.0":"conflict","v1.1.0":"retagged","v1.2.0":"refused"}},` +
		`"refused_artifacts":{"r.example.com:5000/m":{"v1.0.0":"conflict","v1.1.0":"retagged","v1.3.0":"bad_signature","v1.4.0":"tampered"}}}`
	f.Add([]byte(full))
	f.Add([]byte(`{"version":1,"repositories":{},"problems":{}}`))
	f.Add([]byte(`{"version":1,"repositories":{},"problems":{"r":{},"s":null,"t":{"v1":"error"}}}`))
	f.Add([]byte(`{"version":1,"repositories":{},"refused_artifacts":{"r":{},"s":null,"t":{"v1":"tampered"}}}`))
	f.Add([]byte(`{"version":1,"repositories":{}}`))
	f.Add([]byte(`{"version":1,"repositories":{},"resume":"r.example.com/m"}`))
	f.Add([]byte(`{"version":1,"repositories":{"r":{"t":{"digest":"","module":"","conflict":{"digest":"","hash":"","gomod":""}}}}}`))
	f.Add([]byte(`{"version":2,"repositories":{}}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		log := newFakeLog()
		log.aux[stateKey] = data
		s, err := LoadState(ctx, log)
		if err != nil {
			if !errors.Is(err, ErrStateDamaged) || s == nil || len(s.data.Repositories) != 0 || s.data.Resume != "" {
				t.Fatalf("LoadState(%q) = %v; want an empty state and ErrStateDamaged", data, err)
			}
			return
		}
		if err := s.data.check(); err != nil {
			t.Fatalf("LoadState(%q) accepted a state its check refuses: %v", data, err)
		}
		if s.data.Resume != "" {
			if repo, tag := s.resumeAt(); repo == "" || tag == "" {
				t.Fatalf("LoadState(%q) accepted the resume point %q", data, s.data.Resume)
			}
		}
		s.changed()
		if err := s.Save(ctx); err != nil {
			t.Fatal(err)
		}
		again, err := LoadState(ctx, log)
		if err != nil {
			t.Fatalf("LoadState of what Save wrote of %q: %v\n%s", data, err, log.aux[stateKey])
		}
		if !reflect.DeepEqual(again.data, s.data) {
			a, _ := json.Marshal(s.data)
			b, _ := json.Marshal(again.data)
			t.Fatalf("state %q read back as\n%s\nnot\n%s", data, b, a)
		}
	})
}
