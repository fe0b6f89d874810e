package oci

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSources(t *testing.T) {
	sources, err := ParseSources(
		[]string{"registry.example.com/gomod", "registry.example.com/gomod/team", "127.0.0.1:5000"},
		[]string{"registry.example.com/gomod/team/example.com/m", "registry.example.com/gomod/example.com/n", "127.0.0.1:5000/example.com/o"},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		str   string
		repos []string
	}{
		{"registry.example.com/gomod", []string{"gomod/example.com/n"}},
		{"registry.example.com/gomod/team", []string{"gomod/team/example.com/m"}},
		{"127.0.0.1:5000", []string{"example.com/o"}},
	}
	for i, w := range want {
		if got := sources[i].String(); got != w.str || !slices.Equal(sources[i].Repositories, w.repos) {
			t.Errorf("source %d = %s %q, want %s %q", i, got, sources[i].Repositories, w.str, w.repos)
		}
	}
	if sources[2].Registry.Scheme() != "http" || sources[0].Registry.Scheme() != "https" {
		t.Error("want plain http for a loopback registry only")
	}
}

func TestParseSourcesErrors(t *testing.T) {
	tests := []struct {
		registries, repositories []string
		want                     string
	}{
		{[]string{"https://registry.example.com/gomod"}, nil, "HOST[:PORT][/PREFIX]"},
		{[]string{"/gomod"}, nil, "HOST[:PORT][/PREFIX]"},
		{[]string{"registry.example.com/GoMod"}, nil, "lower-case"},
		{[]string{"registry.example.com/gomod/"}, nil, "component"},
		{[]string{"registry.example.com/gomod"}, []string{"other.example.com/gomod/x"}, "not under any -registry"},
		{[]string{"registry.example.com/gomod"}, []string{"registry.example.com/elsewhere/x"}, "not under any -registry"},
		{[]string{"registry.example.com/gomod"}, []string{"registry.example.com/gomod/Bad"}, "lower-case"},
	}
	for _, tt := range tests {
		_, err := ParseSources(tt.registries, tt.repositories)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSources(%q, %q) = %v, want an error containing %q", tt.registries, tt.repositories, err, tt.want)
		}
	}
}
