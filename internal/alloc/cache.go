package alloc

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// FileCache is a gpus.ReservationCache kept in a file of the user's own
// (never in the shared state directory, where another user could forge it),
// so that each container is inspected once, not once per invocation.
type FileCache struct {
	path    string
	entries map[string]gpus.Reservation
	used    map[string]bool
	dirty   bool
}

// OpenFileCache reads the cache at path; a missing or corrupt file is an
// empty cache. With path "", the cache lives in memory only.
func OpenFileCache(path string) *FileCache {
	c := &FileCache{path: path, entries: map[string]gpus.Reservation{}, used: map[string]bool{}}
	if path == "" {
		return c
	}
	if data, err := os.ReadFile(path); err == nil {
		if json.Unmarshal(data, &c.entries) != nil {
			c.entries = map[string]gpus.Reservation{}
		}
	}
	return c
}

// Get returns the cached reservation of a container.
func (c *FileCache) Get(id string) (gpus.Reservation, bool) {
	r, ok := c.entries[id]
	if ok {
		c.used[id] = true
	}
	return r, ok
}

// Put caches the reservation of a container.
func (c *FileCache) Put(id string, r gpus.Reservation) {
	c.entries[id] = r
	c.used[id] = true
	c.dirty = true
}

// Save writes the entries looked up since OpenFileCache (the live
// containers), dropping the others, atomically.
func (c *FileCache) Save() error {
	if c.path == "" || (!c.dirty && len(c.used) == len(c.entries)) {
		return nil
	}
	keep := map[string]gpus.Reservation{}
	for id := range c.used {
		keep[id] = c.entries[id]
	}
	data, err := json.Marshal(keep)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".reservations-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path)
}

// DefaultCachePath is the user's reservation cache:
// ${XDG_CACHE_HOME:-~/.cache}/docker-perceptron/reservations.json.
func DefaultCachePath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "docker-perceptron", "reservations.json")
}
