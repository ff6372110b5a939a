package holders

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/perceptron/docker-perceptron/internal/gpus"

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

// BenchmarkFind2000 is one warm look (the cache knows every container, no
// event since) at a daemon with 2000 created containers, 16 of them holding
// a GPU each: a claim looks two or more times.
func BenchmarkFind2000(b *testing.B) {
	d := &eventDaemon{gpus: map[string]string{}}
	for i := range 2000 {
		id := fmt.Sprintf("%064d", i)
		d.list = append(d.list, container.Summary{ID: id, Names: []string{"/c" + id[:8]}, State: container.StateCreated, Created: 1700000000})
		if i%125 == 0 {
			d.gpus[id] = fmt.Sprint(i / 125)
		}
	}
	cache := OpenFileCache("", "d")
	f := Finder{API: d, Cache: cache, List: cache.List(d)}
	var inv gpus.Inventory
	for i := range 16 {
		inv.Devices = append(inv.Devices, gpus.Device{Index: i, UUID: fmt.Sprintf("GPU-%d", i), NUMANode: -1})
	}
	if _, err := f.Find(context.Background(), inv); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := f.Find(context.Background(), inv); err != nil {
			b.Fatal(err)
		}
	}
}
