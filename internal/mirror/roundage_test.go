package mirror

import (
	"testing"
	"time"
)

// TestRoundAge: the age in a mirror's offline 404 read "3h12m0s", its
// zero seconds of an age rounded to the minute shown, where docs/mirrors.md shows
// "3h12m".
func TestRoundAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{42 * time.Second, "42s"},
		{3*time.Hour + 12*time.Minute + 20*time.Second, "3h12m"},
		{5*time.Minute + 40*time.Second, "6m"},
		{2 * time.Hour, "2h"},
		{72 * time.Hour, "3 days"},
	} {
		if got := roundAge(tc.d); got != tc.want {
			t.Errorf("roundAge(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
