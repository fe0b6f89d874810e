package mirror

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestImportHealsFutureChecked: a mirror holding a checked time in the
// future (a forged bundle header imported before imports refused one)
// takes the next honest bundle's time; it used to keep the forged one, for
// ever, since checked times only move forward.
func TestImportHealsFutureChecked(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	forged := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := setChecked(ctx, m, forged); err != nil {
		t.Fatal(err)
	}
	bundle := export(t, o.log, 0)
	if _, err := importBundle(t, m, o.key.VerifierKey(), bundle, 0); err != nil {
		t.Fatal(err)
	}
	got, err := Checked(ctx, m)
	if err != nil || got.After(time.Now().Add(time.Minute)) {
		t.Errorf("checked after an honest import: %v, %v; want no later than now", got, err)
	}
	// Also by a bundle of the tree the mirror holds, which stores nothing.
	if err := setChecked(ctx, m, forged); err != nil {
		t.Fatal(err)
	}
	if _, err := importBundle(t, m, o.key.VerifierKey(), export(t, o.log, 0), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := Checked(ctx, m); err != nil || got.After(time.Now().Add(time.Minute)) {
		t.Errorf("checked after an honest bundle of the held tree: %v, %v; want no later than now", got, err)
	}
}

// TestImportWithoutChecked: a bundle without a checked time (its mirror
// never knew its head to be the origin's latest; a primary's export) says
// nothing of how current its head is, and its created time used to be
// taken for it: the mirror's offline answers then called a head of any
// age current as of the export. The mirror now keeps the time it had (its
// older head was current then, so the newer one is at least as current),
// and none if it had none.
func TestImportWithoutChecked(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	bundle := export(t, o.log, 0)
	if bytes.Contains(bundle, []byte("\nchecked ")) {
		t.Fatal("a primary's bundle says when its head was checked")
	}
	if _, err := importBundle(t, m, o.key.VerifierKey(), bundle, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := Checked(ctx, m); err != nil || !got.IsZero() {
		t.Errorf("checked after a bundle without one into a new mirror: %v, %v; want none", got, err)
	}
	before := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if err := setChecked(ctx, m, before); err != nil {
		t.Fatal(err)
	}
	o.grow(300, 100)
	if _, err := importBundle(t, m, o.key.VerifierKey(), export(t, o.log, 300), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := Checked(ctx, m); err != nil || !got.Equal(before) {
		t.Errorf("checked after a newer bundle without one: %v, %v; want %v, the mirror's", got, err, before)
	}
}
