package oci

import (
	"context"
	"errors"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	log := newFakeLog()
	s, err := LoadState(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := log.aux[stateKey]; ok {
		t.Errorf("Save of an unchanged state wrote it")
	}
	s.remember("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa", "example.com/m@v1.0.0")
	if err := s.Save(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = LoadState(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if mv, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa"); !ok || mv != "example.com/m@v1.0.0" {
		t.Errorf("recorded = %q, %v after reload", mv, ok)
	}
	if _, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:bb"); ok {
		t.Error("a tag moved to another digest counts as recorded")
	}
	s.forget("r.example/gomod/example.com/m", "v1.0.0")
	if _, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa"); ok || !s.dirty {
		t.Error("forget kept the entry")
	}
}

// TestStateDamaged: a damaged state is only a lost cache: LoadState says so
// and hands back an empty state, which the next Save writes over it.
func TestStateDamaged(t *testing.T) {
	ctx := context.Background()
	for _, data := range []string{"{", `{"version":2,"repositories":{}}`} {
		log := newFakeLog()
		log.aux[stateKey] = []byte(data)
		s, err := LoadState(ctx, log)
		if !errors.Is(err, ErrStateDamaged) || s == nil || len(s.data.Repositories) != 0 {
			t.Fatalf("LoadState(%q) = %v, %v; want an empty state and ErrStateDamaged", data, s, err)
		}
		if err := s.Save(ctx); err != nil || string(log.aux[stateKey]) == data {
			t.Errorf("Save after a damaged state: %v, state still %q", err, log.aux[stateKey])
		}
	}
}
