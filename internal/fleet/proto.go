package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// Version is the machine interface's version: JSON lines, a Request in,
// its reply out (see the README's fleet section). A host that answers
// another version is refused with a clear message.
const Version = 1

// HostAPICommand is the hidden subcommand that serves the interface.
const HostAPICommand = "host-api"

// Request is what a fleet command asks a host.
type Request struct {
	Version int
	Op      string // "gpus": an Offer; "claim": a Claim, then "done"
	// Count GPUs, with the thresholds of a free GPU (nil: the host's
	// defaults, its site policy's).
	Count          int
	MaxMemoryMiB   *uint64 `json:",omitempty"`
	MaxUtilPercent *int    `json:",omitempty"`
	// Image the job runs: whether the host has it, and whether its driver
	// runs it (the pre-flight's image checks).
	Image string `json:",omitempty"`
	// Command is "run" or "create", for the claim's grant.
	Command string `json:",omitempty"`
	// ContainerID ends a claim ("done"): the container that now holds the
	// GPUs, "" when none was created.
	ContainerID string `json:",omitempty"`
}

// GPU is one GPU as a host shows it.
type GPU struct {
	Index          int
	UUID           string
	Name           string
	MemoryUsedMiB  uint64
	MemoryTotalMiB uint64
	Util           int
	State          string // as gpus shows it: free, busy, reserved…
	UsedBy         string
}

// Offer is a host's answer to "gpus": its GPUs, how many are free, the set
// it would give Count GPUs from and how well linked it is, the image, and
// its line of waiters.
type Offer struct {
	Version int
	Host    string // its hostname
	Driver  string
	GPUs    []GPU
	Free    int
	// Best is the set of Count GPUs (indexes) it would choose, and Score
	// the sum of their pair link scores (alloc.PairScore).
	Best         []int `json:",omitempty"`
	Score        int
	ImagePresent bool
	// ImageRefused says why the host's driver cannot run the image; "" when
	// it can, or it cannot tell.
	ImageRefused string `json:",omitempty"`
	Waiters      int
	Error        string `json:",omitempty"` // the host could not answer
}

// Claim is a host's answer to "claim": the GPUs it claimed for the job,
// held under its lock until "done" (or the connection closes).
type Claim struct {
	Version int
	UUIDs   []string
	Devices []GPU
	Token   string
	// Error says why nothing was claimed; NotEnough when too few GPUs were
	// free (another user took them since the offer: try another host).
	Error     string `json:",omitempty"`
	NotEnough bool   `json:",omitempty"`
}

// VersionError is a host that speaks another version of the interface.
type VersionError struct {
	Host      string
	Got, Want int
}

func (e *VersionError) Error() string {
	if e.Got < e.Want {
		return fmt.Sprintf("%s runs an older docker perceptron (machine interface %d, this one speaks %d): install the same release there", e.Host, e.Got, e.Want)
	}
	return fmt.Sprintf("%s runs a newer docker perceptron (machine interface %d, this one speaks %d): install the same release here", e.Host, e.Got, e.Want)
}

// Conn is a connection to one host's machine interface.
type Conn struct {
	host string
	in   io.WriteCloser
	out  *bufio.Reader
	stop func() error
	once sync.Once
	errs *strings.Builder // the command's stderr, for errors
}

// Local serves the interface in this process (a daemon on this machine).
type Local func(ctx context.Context, in io.Reader, out io.Writer) error

// Dial starts h's machine interface: its command, or local for a host
// reached here.
func Dial(ctx context.Context, h Host, local Local) (*Conn, error) {
	via, command, err := Reach(h)
	if err != nil {
		return nil, err
	}
	if via == ViaLocal {
		return dialLocal(ctx, h, local), nil
	}
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: cannot start %s: %w", h.Context, command[0], err)
	}
	return &Conn{host: h.Context, in: in, out: bufio.NewReader(out), stop: cmd.Wait, errs: &stderr}, nil
}

func dialLocal(ctx context.Context, h Host, local Local) *Conn {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := local(ctx, inR, outW)
		_ = outW.CloseWithError(err)
		_ = inR.Close()
		done <- err
	}()
	return &Conn{host: h.Context, in: inW, out: bufio.NewReader(outR), stop: func() error { return <-done }, errs: &strings.Builder{}}
}

// Send writes one message.
func (c *Conn) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		_ = c.Close()
		return fmt.Errorf("%s stopped answering: %s", c.host, c.why(err))
	}
	return nil
}

// Receive reads one reply into v, checking its version.
func (c *Conn) Receive(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		_ = c.Close() // its stderr is complete once it has exited
		return fmt.Errorf("%s did not answer: %s", c.host, c.why(err))
	}
	var head struct{ Version int }
	if err := json.Unmarshal(line, &head); err != nil {
		return fmt.Errorf("%s answered something that is not docker perceptron's machine interface: %.80q", c.host, line)
	}
	if head.Version != Version {
		return &VersionError{Host: c.host, Got: head.Version, Want: Version}
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("%s answered an unreadable reply: %w", c.host, err)
	}
	return nil
}

// why is the command's own words when it said something on stderr (read
// only once it has exited: Close).
func (c *Conn) why(err error) string {
	if s := strings.TrimSpace(c.errs.String()); s != "" {
		if i := strings.LastIndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		return s
	}
	if errors.Is(err, io.EOF) {
		return "the connection closed"
	}
	return err.Error()
}

// Close ends the connection: the host ends what it held.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() {
		_ = c.in.Close()
		err = c.stop()
	})
	return err
}
