package main

import "testing"

// TestOriginIsSumGolangOrg: the origins a new mirror without -origin-key
// may follow with sum.golang.org's built-in key are sum.golang.org itself
// and a proxy relaying it; any other gets the built-in key only by mistake.
func TestOriginIsSumGolangOrg(t *testing.T) {
	for url, want := range map[string]bool{
		"https://sum.golang.org":                         true,
		"https://sum.golang.org/":                        true,
		"https://SUM.golang.org:443":                     true,
		"https://proxy.golang.org/sumdb/sum.golang.org":  true,
		"https://athens.corp/sumdb/sum.golang.org/":      true,
		"https://sum.golang.google.cn":                   true,
		"http://127.0.0.1:8080":                          false,
		"https://sumd.corp.example/sumdb/sumd.local":     false,
		"https://sum.golang.org.evil.example":            false,
		"https://corp.example/sumdb/sum.golang.org/more": false,
	} {
		if got := originIsSumGolangOrg(url); got != want {
			t.Errorf("originIsSumGolangOrg(%q) = %v, want %v", url, got, want)
		}
	}
}
