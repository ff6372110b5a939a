package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

const grantPrefix = "grant-"

// Grant tells every docker perceptron on this host, whatever Docker daemon it
// talks to, which GPUs a container of one daemon was given: a second daemon
// (a user's rootless one, another context) cannot list that container.
// Its run writes it before creating the container, and rewrites it with the
// container's ID once the container exists; it is removed when the container
// no longer holds the GPUs. Users of the same daemon ignore it: they see the
// container itself.
type Grant struct {
	Token  string   `json:"token"` // the claim's: names the file
	UUIDs  []string `json:"uuids"`
	Daemon string   `json:"daemon"` // the daemon's DaemonKey
	// ContainerID is the container's, once it exists; "" while its run
	// creates it.
	ContainerID string `json:"container_id,omitempty"`
	// Command made the container: "run" (it holds the GPUs while it runs)
	// or "create" (it holds them until removed).
	Command string `json:"command"`
	// PID and Start are the run's: while it lives, the grant holds.
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	// UID is, on reading, the file's owner, whatever the file says.
	UID int `json:"uid"`
}

// NewGrant returns this process's grant of uuids, claimed with token, for a
// container that command ("run", "create") makes on the daemon with ID daemon.
func NewGrant(token string, uuids []string, daemon, command string) Grant {
	return Grant{
		Token: token, UUIDs: slices.Clone(uuids), Daemon: daemon, Command: command,
		PID: os.Getpid(), Start: startTime(os.Getpid()), UID: os.Geteuid(),
	}
}

// RunAlive reports whether the run that wrote g still lives (as a lease's,
// see ActiveLeases); a hidden process counts, as its lease would.
func (g Grant) RunAlive() bool {
	return running(g.PID, g.Start, uint32(g.UID)) != procDead
}

// WriteGrant records g in dir, replacing the grant of the same token. Only
// its owner can replace or remove it (the directory is sticky).
func WriteGrant(dir string, g Grant) error {
	if !validToken(g.Token) {
		return fmt.Errorf("invalid grant token %q", g.Token)
	}
	d, err := openDir(dir, true)
	if err != nil {
		return err
	}
	defer d.Close()
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	name := grantName(g.Token)
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("replacing grant: %w", &os.PathError{Op: "remove", Path: dir + "/" + name, Err: err})
	}
	if err := createFile(d, name, data); err != nil {
		return fmt.Errorf("writing grant: %w", err)
	}
	return nil
}

// RemoveGrant removes the grant of token; one already gone is no error.
func RemoveGrant(dir, token string) error {
	if !validToken(token) {
		return fmt.Errorf("invalid grant token %q", token)
	}
	return removeFile(dir, grantName(token), "removing grant")
}

// Grants returns the well-formed grants in dir, each with its file's owner
// as UID; files that are not grants are ignored. Whether one still holds is
// for the reader to judge (see RunAlive, and internal/holders). A missing
// dir holds none.
func Grants(dir string) ([]Grant, error) {
	d, err := openDir(dir, false)
	if d == nil || err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := listNames(d, grantPrefix)
	if err != nil {
		return nil, err
	}
	var out []Grant
	for _, name := range names {
		data, m, err := readFile(d, name)
		if err != nil {
			continue
		}
		if g, ok := parseGrant(name, data); ok {
			g.UID = int(m.uid)
			out = append(out, g)
		}
	}
	return out, nil
}

// parseGrant parses grant file name; ok is false unless it is a well-formed
// grant whose token is the one its name carries.
func parseGrant(name string, data []byte) (g Grant, ok bool) {
	token, found := strings.CutPrefix(name, grantPrefix)
	token, found2 := strings.CutSuffix(token, leaseSuffix)
	if !found || !found2 || !validToken(token) || json.Unmarshal(data, &g) != nil {
		return Grant{}, false
	}
	if g.Token != token || g.Daemon == "" || len(g.UUIDs) == 0 || g.PID <= 0 {
		return Grant{}, false
	}
	return g, true
}

// DaemonKey names a Docker daemon on this host from docker info's ID and
// DockerRootDir: two rootful daemons can share an ID (it comes from
// /etc/docker/key.json on older daemons), never a data root.
func DaemonKey(id, rootDir string) string {
	if id == "" && rootDir == "" {
		return ""
	}
	return id + "@" + rootDir
}

func grantName(token string) string { return grantPrefix + token + leaseSuffix }
