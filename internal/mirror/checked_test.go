package mirror

import (
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
