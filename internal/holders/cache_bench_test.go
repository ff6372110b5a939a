package holders

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// BenchmarkFileCache2000 opens and saves the cache of a daemon with 2000
// containers, as every invocation does.
func BenchmarkFileCache2000(b *testing.B) {
	path := filepath.Join(b.TempDir(), "containers.json")
	c := OpenFileCache(path, "d")
	for i := range 2000 {
		id := fmt.Sprintf("%064d", i)
		c.state.Containers[id] = &seen{Name: id[:12], State: container.StateCreated, Created: 1700000000}
		c.Put(id, Reservation{Format: reservationFormat})
	}
	if err := c.Save(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c := OpenFileCache(path, "d")
		c.dirty = true
		if err := c.Save(); err != nil {
			b.Fatal(err)
		}
	}
}
