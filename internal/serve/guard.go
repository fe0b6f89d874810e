package serve

import (
	"context"
	"fmt"
	"os"
	"time"
)

// guardInterval is how often the database file is checked: a stat a second
// costs nothing, and every second more is records acknowledged into a file
// that is gone.
var guardInterval = time.Second

// guardPart stops the server when the database file at path is removed or
// replaced (renamed over, restored from a backup) while it is served. The
// open database would go on accepting records into a file that no one can
// open again, or that the next start no longer finds: acknowledged records
// would be lost. Stopping at once bounds the loss; the next start serves
// what the path holds then, and verifies it.
func guardPart(path string) (Part, error) {
	served, err := os.Stat(path)
	if err != nil {
		return Part{}, fmt.Errorf("failed to watch the database file: %w", err)
	}
	return Part{
		Name: "database file watch",
		Hint: "never remove, move or copy over the database file while sumd serve runs; stop the server first (see docs/operations.md)",
		Run: func(ctx context.Context) error {
			t := time.NewTicker(guardInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
				now, err := os.Stat(path)
				switch {
				case err != nil:
					return fmt.Errorf("the database file %s is gone while served: %w", path, err)
				case !os.SameFile(served, now):
					return fmt.Errorf("the database file %s was replaced while served", path)
				}
			}
		},
	}, nil
}
