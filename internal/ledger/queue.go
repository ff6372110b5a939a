package ledger

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const ticketPrefix = "ticket-"

// ErrTicketLost is returned when a ticket's file has disappeared from the
// queue (removed by hand, or the state directory was cleaned).
var ErrTicketLost = errors.New("queue ticket lost")

// Ticket is a place in the FIFO queue of invocations waiting for GPUs
// (`--wait`). The head is the oldest ticket whose process is alive; tickets of
// dead processes are skipped, and so are tickets that name a process which is
// not the plugin run that joined (see the package doc) or that cannot be
// checked. A waiter that is alive but stopped (^Z) holds the queue until it
// resumes or exits.
type Ticket struct {
	Seq   uint64 // position: later tickets have higher numbers
	Token string

	dir  string
	name string
}

type ticketFile struct {
	Token   string    `json:"token"`
	GPUs    int       `json:"gpus"` // how many GPUs the waiter asks for
	PID     int       `json:"pid"`
	Start   uint64    `json:"start"` // the process's start time, as in Lease
	Created time.Time `json:"created"`
}

// Enqueue joins the queue in dir (created if missing) behind every ticket
// already there. It does not need the lock: each ticket is a file named by a
// sequence number one above the highest present, created exclusively, so
// concurrent Enqueues get distinct places. gpus is how many GPUs the waiter
// asks for, shown to the others.
func Enqueue(dir string, gpus int) (*Ticket, error) {
	return enqueue(dir, os.Getpid(), gpus)
}

func enqueue(dir string, pid, gpus int) (*Ticket, error) {
	d, err := openDir(dir, true)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := listNames(d, ticketPrefix)
	if err != nil {
		return nil, err
	}
	var seq uint64
	for _, n := range names {
		// Ignore absurd numbers, planted to make the sequence wrap.
		if s, ok := ticketSeq(n); ok && s < 1<<60 {
			seq = max(seq, s)
		}
	}
	t := &Ticket{Token: newToken(), dir: dir}
	data, err := json.Marshal(ticketFile{Token: t.Token, GPUs: gpus, PID: pid, Start: startTime(pid), Created: time.Now()})
	if err != nil {
		return nil, err
	}
	for range 1000 {
		seq++
		t.Seq, t.name = seq, ticketName(seq)
		err = createFile(d, t.name, data)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("joining the GPU queue: %w", err)
	}
	return t, nil
}

// Ahead returns how many live tickets are ahead of t. Our own dead tickets
// met on the way are removed.
func (t *Ticket) Ahead() (int, error) {
	d, err := openDir(t.dir, false)
	if err != nil {
		return 0, err
	}
	if d == nil {
		return 0, fmt.Errorf("%w: %s is gone", ErrTicketLost, t.dir)
	}
	defer d.Close()
	if tf, owner, ok := readTicket(d, t.name); !ok || tf.Token != t.Token || owner != uint32(os.Geteuid()) {
		return 0, fmt.Errorf("%w: %s/%s", ErrTicketLost, t.dir, t.name)
	}
	ahead, err := liveTickets(d, func(seq uint64) bool { return seq < t.Seq })
	return len(ahead), err
}

// Waiter is one live place in the queue, as Waiters shows it to people.
type Waiter struct {
	Position int       // 1 is the head: the next to be served
	UID      int       // the ticket file's owner, whatever the file says
	GPUs     int       // how many GPUs it asks for
	Since    time.Time // when it joined, as its ticket says
	PID      int       // the waiting invocation (perceptron-core)
}

// Waiters returns the live tickets in dir in queue order, by the rule
// Ahead counts them with: tickets of dead processes, of processes that are
// not the plugin run that joined, and of processes that cannot be checked
// are left out, as they hold no one back. Our own dead tickets met on the
// way are removed. A missing dir is an empty queue.
func Waiters(dir string) ([]Waiter, error) {
	d, err := openDir(dir, false)
	if d == nil || err != nil {
		return nil, err
	}
	defer d.Close()
	live, err := liveTickets(d, nil)
	if err != nil {
		return nil, err
	}
	var waiters []Waiter
	for i, q := range live {
		waiters = append(waiters, Waiter{Position: i + 1, UID: int(q.owner), GPUs: q.tf.GPUs, Since: q.tf.Created, PID: q.tf.PID})
	}
	return waiters, nil
}

// queued is a ticket that holds its place in the queue.
type queued struct {
	seq   uint64
	owner uint32 // the file's owner
	tf    ticketFile
}

// liveTickets returns the tickets in d whose sequence number within accepts
// (nil: all) and whose process is live, in queue order. A ticket whose
// process cannot be checked (procHidden) does not hold the queue; our own
// dead tickets are removed.
func liveTickets(d *os.File, within func(seq uint64) bool) ([]queued, error) {
	names, err := listNames(d, ticketPrefix)
	if err != nil {
		return nil, err
	}
	me := uint32(os.Geteuid())
	var live []queued
	for _, n := range names {
		s, ok := ticketSeq(n)
		if !ok || within != nil && !within(s) {
			continue
		}
		tf, owner, ok := readTicket(d, n)
		if !ok {
			continue
		}
		switch running(tf.PID, tf.Start, owner) {
		case procLive:
			live = append(live, queued{seq: s, owner: owner, tf: tf})
		case procHidden: // cannot be checked: does not hold the queue
		case procDead:
			if owner == me {
				unix.Unlinkat(int(d.Fd()), n, 0) //nolint:errcheck // another waiter may have removed it
			}
		}
	}
	slices.SortFunc(live, func(a, b queued) int { return cmp.Compare(a.seq, b.seq) })
	return live, nil
}

// IsHead reports whether t is first among the live tickets.
func (t *Ticket) IsHead() (bool, error) {
	n, err := t.Ahead()
	return n == 0 && err == nil, err
}

// Leave removes t from the queue; leaving twice is not an error.
func (t *Ticket) Leave() error {
	return removeFile(t.dir, t.name, "leaving the GPU queue")
}

// ticketName pads the sequence so names sort in queue order in a listing.
func ticketName(seq uint64) string { return fmt.Sprintf("%s%020d", ticketPrefix, seq) }

func ticketSeq(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, ticketPrefix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func readTicket(d *os.File, name string) (ticketFile, uint32, bool) {
	data, m, err := readFile(d, name)
	if err != nil {
		return ticketFile{}, 0, false
	}
	var tf ticketFile
	if json.Unmarshal(data, &tf) != nil || !validToken(tf.Token) || tf.PID <= 0 {
		return ticketFile{}, 0, false
	}
	return tf, m.uid, true
}
