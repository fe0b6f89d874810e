package modhash_test

import (
	"fmt"

	"github.com/sumd-project/sumd/internal/modhash"
)

func ExampleGoModHash() {
	h, err := modhash.GoModHash([]byte("module example.com/m\n"))
	if err != nil {
		panic(err)
	}
	fmt.Println("example.com/m v1.0.0/go.mod", h)
	// Output:
	// example.com/m v1.0.0/go.mod h1:flS2VctbRrTv+sBE+VKgxx6hlkMGPVz9MGOmzMYFg3k=
}

func ExampleSynthesizedGoMod() {
	fmt.Printf("%q\n", modhash.SynthesizedGoMod("example.com/old"))
	// Output:
	// "module example.com/old\n"
}
