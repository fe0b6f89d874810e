package upstream_test

import (
	"fmt"

	"github.com/sumd-project/sumd/internal/upstream"
)

func ExampleParseList() {
	srcs, err := upstream.ParseList("https://athens.corp.example/,artifactory.corp.example/api/go/golang|file:///srv/goproxy")
	if err != nil {
		panic(err)
	}
	for _, s := range srcs {
		fmt.Println(s.URL, s.FallBackOnError)
	}
	fmt.Println(upstream.FormatList(srcs))

	_, err = upstream.ParseList("https://proxy.corp.example,direct")
	fmt.Println(err)
	// Output:
	// https://athens.corp.example false
	// https://artifactory.corp.example/api/go/golang true
	// file:///srv/goproxy false
	// https://athens.corp.example,https://artifactory.corp.example/api/go/golang|file:///srv/goproxy
	// "direct" is not supported: sumd fetches only from module proxies, never from version control
}

func ExampleParseAuth() {
	for _, s := range []string{"bearer:/run/secrets/goproxy-token", "basic:sumd:/run/secrets/goproxy-password", "netrc:/etc/sumd/netrc"} {
		a, err := upstream.ParseAuth(s)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s user=%q file=%s\n", a.Kind, a.User, a.File)
	}
	// Output:
	// bearer user="" file=/run/secrets/goproxy-token
	// basic user="sumd" file=/run/secrets/goproxy-password
	// netrc user="" file=/etc/sumd/netrc
}
