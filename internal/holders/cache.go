package holders

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// FileCache is a ReservationCache kept in a file of the user's own
// (never in the shared state directory, where another user could forge it),
// so that each container is inspected once, not once per invocation. It
// also remembers enough to list only what changed since the last invocation
// (see List).
type FileCache struct {
	path       string
	state      cacheState
	used       map[string]bool
	dirty      bool
	incomplete bool // a listing or an inspection failed: nothing is saved
}

// cacheState is the file's content. A container's configuration never
// changes, so what it reserves is known for good once it was inspected.
type cacheState struct {
	Entries map[string]Reservation `json:"entries"`
	// Pending are containers seen but not inspected (they were not live):
	// they are looked at again each time, until they are known.
	Pending []string `json:"pending,omitempty"`
	// Anchors are the newest containers seen: containers created after the
	// newest of them that still exists are the new ones.
	Anchors []anchor `json:"anchors,omitempty"`
}

type anchor struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
}

// maxAnchors is how many of the newest containers are remembered: one
// that still exists is enough, a few survive containers being removed.
const maxAnchors = 8

// OpenFileCache reads the cache at path; a missing or corrupt file is an
// empty cache. With path "", the cache lives in memory only.
func OpenFileCache(path string) *FileCache {
	c := &FileCache{path: path, used: map[string]bool{}}
	if path != "" {
		if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &c.state) != nil {
			c.state = cacheState{}
		}
	}
	if c.state.Entries == nil {
		c.state.Entries = map[string]Reservation{}
	}
	return c
}

// Get returns the cached reservation of a container.
func (c *FileCache) Get(id string) (Reservation, bool) {
	r, ok := c.state.Entries[id]
	if ok {
		c.used[id] = true
	}
	return r, ok
}

// Put caches the reservation of a container.
func (c *FileCache) Put(id string, r Reservation) {
	c.state.Entries[id] = r
	c.used[id] = true
	c.dirty = true
}

// Incomplete tells the cache that a lookup failed part way (a listing or an
// inspection): what it saw is not the whole picture, and Save keeps the file
// as it was, so that the next lookup still watches every known holder.
func (c *FileCache) Incomplete() { c.incomplete = true }

// Save writes the cache, keeping the entries of the containers that still
// exist (those looked up since OpenFileCache, and those List found),
// atomically.
func (c *FileCache) Save() error {
	if c.path == "" || c.incomplete || (!c.dirty && len(c.used) == len(c.state.Entries)) {
		return nil
	}
	keep := cacheState{Entries: map[string]Reservation{}, Pending: c.state.Pending, Anchors: c.state.Anchors}
	for id := range c.used {
		if r, ok := c.state.Entries[id]; ok {
			keep.Entries[id] = r
		}
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

// List returns a Finder.List function that finds every container
// that may hold GPUs with two small, filtered list calls instead of listing
// every container: the known GPU holders and the containers not inspected
// yet, by ID, and the containers created since the newest one seen before.
// Without such an anchor (first use, or all anchors removed) it lists
// everything once.
func (c *FileCache) List(api ContainerAPI) func(context.Context) ([]container.Summary, error) {
	return func(ctx context.Context) (_ []container.Summary, err error) {
		defer func() {
			if err != nil {
				c.Incomplete()
			}
		}()
		watch := slices.Clone(c.state.Pending)
		for id, r := range c.state.Entries {
			if r.Holds("") { // "": NVIDIA_VISIBLE_DEVICES counts, to be safe
				watch = append(watch, id)
			}
		}
		for _, a := range c.state.Anchors {
			watch = append(watch, a.ID)
		}
		if len(c.state.Anchors) == 0 {
			return c.listAll(ctx, api)
		}
		known, err := listFiltered(ctx, api, client.Filters{}.Add("id", watch...))
		if err != nil {
			return nil, err
		}
		var newest *container.Summary
		for i, s := range known {
			if slices.ContainsFunc(c.state.Anchors, func(a anchor) bool { return a.ID == s.ID }) &&
				(newest == nil || s.Created > newest.Created) {
				newest = &known[i]
			}
		}
		if newest == nil {
			return c.listAll(ctx, api)
		}
		fresh, err := listFiltered(ctx, api, client.Filters{}.Add("since", newest.ID))
		if err != nil {
			return c.listAll(ctx, api)
		}
		all := append(known, fresh...)
		all = slices.CompactFunc(sortByID(all), func(a, b container.Summary) bool { return a.ID == b.ID })
		c.remember(all)
		return all, nil
	}
}

func (c *FileCache) listAll(ctx context.Context, api ContainerAPI) ([]container.Summary, error) {
	all, err := listFiltered(ctx, api, nil)
	if err != nil {
		return nil, err
	}
	c.state.Anchors = nil
	c.remember(all)
	return all, nil
}

// remember notes what a listing found: the entries of containers that
// still exist are kept, those not inspected yet are pending, and the newest
// containers are the next anchors.
func (c *FileCache) remember(found []container.Summary) {
	var pending []string
	anchors := slices.Clone(c.state.Anchors)
	anchors = slices.DeleteFunc(anchors, func(a anchor) bool {
		return !slices.ContainsFunc(found, func(s container.Summary) bool { return s.ID == a.ID })
	})
	for _, s := range found {
		if _, ok := c.state.Entries[s.ID]; ok {
			c.used[s.ID] = true
		} else if !Live(s.State) {
			pending = append(pending, s.ID)
		}
		if !slices.ContainsFunc(anchors, func(a anchor) bool { return a.ID == s.ID }) {
			anchors = append(anchors, anchor{ID: s.ID, Created: s.Created})
		}
	}
	slices.SortFunc(anchors, func(a, b anchor) int { return cmp.Or(cmp.Compare(b.Created, a.Created), cmp.Compare(a.ID, b.ID)) })
	if len(anchors) > maxAnchors {
		anchors = anchors[:maxAnchors]
	}
	if !slices.Equal(pending, c.state.Pending) || !slices.Equal(anchors, c.state.Anchors) {
		c.dirty = true
	}
	c.state.Pending, c.state.Anchors = pending, anchors
}

func listFiltered(ctx context.Context, api ContainerAPI, filters client.Filters) ([]container.Summary, error) {
	res, err := api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("cannot list containers: %w", err)
	}
	return res.Items, nil
}

func sortByID(s []container.Summary) []container.Summary {
	slices.SortFunc(s, func(a, b container.Summary) int { return cmp.Compare(a.ID, b.ID) })
	return s
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
