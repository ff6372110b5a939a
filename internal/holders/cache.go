package holders

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/perceptron/docker-perceptron/internal/labels"
)

// ListerAPI is what a FileCache lists containers with: the container list,
// and the daemon's events, which tell what changed since the last look
// without walking every container.
type ListerAPI interface {
	ContainerAPI
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
}

// FileCache remembers, in a file of the user's own (never in the shared
// state directory, where another user could forge it), every container of
// one daemon: its state, and what it reserves once inspected. A container's
// configuration never changes, so each container is inspected once, holder
// or not. What changed since the last look comes from the daemon's events,
// so a look costs the same with 20 containers or 2000; a full listing is
// needed only the first time, and when more happened than the daemon's
// events remember.
type FileCache struct {
	path       string
	state      cacheState
	dirty      bool
	incomplete bool // a listing or an inspection failed: nothing is saved
}

// cacheState is the file's content.
type cacheState struct {
	Daemon string `json:"daemon"`
	// Seen: the daemon's events after it are not applied yet; zero means
	// nothing is known, and the next look lists every container.
	Seen       time.Time        `json:"seen"`
	Containers map[string]*seen `json:"containers"`
}

// seen is what is known of one container.
type seen struct {
	Name    string                   `json:"n,omitempty"`
	State   container.ContainerState `json:"s"`
	Created int64                    `json:"c,omitempty"`
	Labels  map[string]string        `json:"l,omitempty"` // docker perceptron's own only
	Res     *Reservation             `json:"r,omitempty"` // nil: not inspected yet
}

// cacheFormat is the file name's version: older files are not read.
const cacheFormat = "containers-v4"

// eventsOverlap is read again from before Seen: events are stamped by the
// daemon's clock, and replaying a container's events in order again is
// harmless.
const eventsOverlap = time.Second

// maxEvents: dockerd keeps its last 256 events, of every kind (20.10 and
// later). A look that gets nearly that many may have lost older ones, and
// lists everything instead.
const maxEvents = 200

// OpenFileCache reads the cache of the daemon whose key is daemon (see
// ledger.DaemonKey), kept next to path; a missing or corrupt file is an
// empty cache. With path "", the cache lives in memory only.
func OpenFileCache(path, daemon string) *FileCache {
	c := &FileCache{}
	if path != "" {
		sum := sha256.Sum256([]byte(daemon))
		c.path = filepath.Join(filepath.Dir(path), cacheFormat+"-"+hex.EncodeToString(sum[:6])+".gob")
		if f, err := os.Open(c.path); err == nil {
			if gob.NewDecoder(bufio.NewReader(f)).Decode(&c.state) != nil || c.state.Daemon != daemon {
				c.state = cacheState{}
			}
			_ = f.Close()
		}
	}
	c.state.Daemon = daemon
	if c.state.Containers == nil {
		c.state.Containers = map[string]*seen{}
	}
	return c
}

// Get returns the cached reservation of a container.
func (c *FileCache) Get(id string) (Reservation, bool) {
	if s, ok := c.state.Containers[id]; ok && s.Res != nil {
		return *s.Res, true
	}
	return Reservation{}, false
}

// Put caches the reservation of a container.
func (c *FileCache) Put(id string, r Reservation) {
	s, ok := c.state.Containers[id]
	if !ok {
		s = &seen{}
		c.state.Containers[id] = s
	}
	s.Res = &r
	c.dirty = true
}

// Incomplete tells the cache that a lookup failed part way (a listing or an
// inspection): what it saw is not the whole picture, and Save keeps the file
// as it was.
func (c *FileCache) Incomplete() { c.incomplete = true }

// Save writes the cache atomically.
func (c *FileCache) Save() error {
	if c.path == "" || c.incomplete || !c.dirty {
		return nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(c.state); err != nil {
		return err
	}
	data := buf.Bytes()
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".containers-*")
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

// List returns a Finder.List function: every container of the daemon, as of
// now, from the daemon's events since the last look, or from a full listing
// the first time and when the events may be incomplete.
func (c *FileCache) List(api ListerAPI) func(context.Context) ([]container.Summary, error) {
	return func(ctx context.Context) (_ []container.Summary, err error) {
		defer func() {
			if err != nil {
				c.Incomplete()
			}
		}()
		now := time.Now()
		if !c.state.Seen.IsZero() {
			msgs, complete, err := containerEvents(ctx, api, c.state.Seen.Add(-eventsOverlap), now)
			if err == nil && complete {
				c.apply(msgs)
				c.state.Seen, c.dirty = now, true
				return c.summaries(), nil
			}
		}
		return c.listAll(ctx, api, now)
	}
}

// listAll lists every container; the reservations of those still there are
// kept.
func (c *FileCache) listAll(ctx context.Context, api ContainerAPI, now time.Time) ([]container.Summary, error) {
	res, err := api.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("cannot list containers: %w", err)
	}
	old := c.state.Containers
	c.state.Containers = make(map[string]*seen, len(res.Items))
	for _, s := range res.Items {
		k := &seen{Name: containerName(s.Names), State: s.State, Created: s.Created, Labels: ownLabels(s.Labels)}
		if o, ok := old[s.ID]; ok {
			k.Res = o.Res
		}
		c.state.Containers[s.ID] = k
	}
	c.state.Seen, c.dirty = now, true
	return res.Items, nil
}

// containerEvents returns the daemon's container events from since until
// until, oldest first; complete is false when there may have been more than
// the daemon remembers. The daemon keeps its last 256 events of every kind
// together (networks, volumes, images as well as containers), so all of
// them are asked for and counted: a filtered query would look complete
// while network events had pushed container events out.
func containerEvents(ctx context.Context, api ListerAPI, since, until time.Time) (_ []events.Message, complete bool, _ error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := api.Events(ctx, client.EventsListOptions{Since: unixNano(since), Until: unixNano(until)})
	var msgs []events.Message
	total := 0
	for {
		select {
		case m := <-res.Messages:
			total++
			if m.Type == events.ContainerEventType && containerActions[m.Action] {
				msgs = append(msgs, m)
			}
		case err := <-res.Err:
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, false, err
			}
			// Messages is unbuffered: all sent before the end are read.
			return msgs, total < maxEvents, nil
		}
	}
}

// containerActions are the container events that change what is known.
var containerActions = map[events.Action]bool{
	events.ActionCreate: true, events.ActionStart: true, events.ActionRestart: true, events.ActionDie: true,
	events.ActionPause: true, events.ActionUnPause: true, events.ActionDestroy: true, events.ActionRename: true,
}

func unixNano(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// apply replays events, oldest first, on what is known.
func (c *FileCache) apply(msgs []events.Message) {
	for _, m := range msgs {
		id := m.Actor.ID
		if m.Action == events.ActionDestroy {
			delete(c.state.Containers, id)
			continue
		}
		s, ok := c.state.Containers[id]
		if !ok {
			s = &seen{Name: m.Actor.Attributes["name"], Created: m.Time, Labels: ownLabels(m.Actor.Attributes)}
			c.state.Containers[id] = s
		}
		switch m.Action {
		case events.ActionCreate:
			s.State = container.StateCreated
		case events.ActionStart, events.ActionRestart, events.ActionUnPause:
			s.State = container.StateRunning
		case events.ActionPause:
			s.State = container.StatePaused
		case events.ActionDie:
			s.State = container.StateExited
		case events.ActionRename:
			s.Name = m.Actor.Attributes["name"]
		}
	}
}

// summaries lists what is known, as the daemon's list would.
func (c *FileCache) summaries() []container.Summary {
	out := make([]container.Summary, 0, len(c.state.Containers))
	for id, s := range c.state.Containers {
		out = append(out, container.Summary{ID: id, Names: []string{"/" + s.Name}, State: s.State, Created: s.Created, Labels: maps.Clone(s.Labels)})
	}
	return out
}

// ownLabels keeps docker perceptron's labels (the stale rule reads them).
func ownLabels(all map[string]string) map[string]string {
	var own map[string]string
	for k, v := range all {
		if strings.HasPrefix(k, labels.Prefix) {
			if own == nil {
				own = map[string]string{}
			}
			own[k] = v
		}
	}
	return own
}

// DefaultCachePath is where the user's caches live, one file per daemon
// next to it: ${XDG_CACHE_HOME:-~/.cache}/docker-perceptron/.
func DefaultCachePath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "docker-perceptron", "containers.json")
}
