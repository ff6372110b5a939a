package ledger

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func enqueueT(t *testing.T, dir string) *Ticket {
	t.Helper()
	tk, err := Enqueue(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func ahead(t *testing.T, tk *Ticket) int {
	t.Helper()
	n, err := tk.Ahead()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestQueueOrder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, b, c := enqueueT(t, dir), enqueueT(t, dir), enqueueT(t, dir)
	if !(a.Seq < b.Seq && b.Seq < c.Seq) {
		t.Fatalf("sequence %d, %d, %d not increasing", a.Seq, b.Seq, c.Seq)
	}
	for i, tk := range []*Ticket{a, b, c} {
		if got := ahead(t, tk); got != i {
			t.Errorf("ticket %d: %d ahead, want %d", i, got, i)
		}
	}
	if head, err := a.IsHead(); !head || err != nil {
		t.Errorf("first ticket IsHead() = %v, %v", head, err)
	}
	if head, err := b.IsHead(); head || err != nil {
		t.Errorf("second ticket IsHead() = %v, %v", head, err)
	}

	// The head leaves: the next is head; a newcomer joins at the back.
	if err := a.Leave(); err != nil {
		t.Fatal(err)
	}
	if err := a.Leave(); err != nil {
		t.Errorf("second Leave() = %v", err)
	}
	d := enqueueT(t, dir)
	for _, tc := range []struct {
		tk   *Ticket
		want int
	}{{b, 0}, {c, 1}, {d, 2}} {
		if got := ahead(t, tc.tk); got != tc.want {
			t.Errorf("ticket %d: %d ahead, want %d", tc.tk.Seq, got, tc.want)
		}
	}

	// One in the middle leaves.
	if err := c.Leave(); err != nil {
		t.Fatal(err)
	}
	if got := ahead(t, d); got != 1 {
		t.Errorf("after the middle left: %d ahead, want 1", got)
	}
}

func TestQueueSkipsDeadWaiters(t *testing.T) {
	dir := t.TempDir()
	dead, err := enqueue(dir, deadPID(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	me := enqueueT(t, dir)
	if head, err := me.IsHead(); !head || err != nil {
		t.Errorf("IsHead() behind a dead waiter = %v, %v; want true", head, err)
	}
	if exists(dir, dead.name) {
		t.Error("our own dead ticket was not removed")
	}
}

func TestQueueIgnoresForeignFiles(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	elsewhere := enqueueT(t, outside) // live, but not in this queue
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(ticketName(1), "garbage")
	write(ticketName(2), `{"token":"A","pid":0}`)
	write(ticketName(3), `{"token":"../x","pid":1}`)
	symlink(t, filepath.Join(outside, elsewhere.name), filepath.Join(dir, ticketName(4)))
	write("ticket-5", fmt.Sprintf(`{"token":"SHORT","pid":%d}`, os.Getpid())) // not a ticket name
	// Planted to make the sequence wrap past zero: ignored for numbering.
	write(ticketName(1<<64-1), fmt.Sprintf(`{"token":"LAST","pid":%d}`, os.Getpid()))

	me := enqueueT(t, dir)
	if me.Seq != 5 {
		t.Errorf("Seq = %d, want 5 (after the planted names)", me.Seq)
	}
	if head, err := me.IsHead(); !head || err != nil {
		t.Errorf("IsHead() = %v, %v; want true", head, err)
	}
}

func TestQueueLostTicket(t *testing.T) {
	dir := t.TempDir()
	tk := enqueueT(t, dir)
	if err := os.Remove(filepath.Join(dir, tk.name)); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Ahead(); !errors.Is(err, ErrTicketLost) {
		t.Errorf("Ahead() = %v, want ErrTicketLost", err)
	}
	// Another ticket under our name is not ours.
	if err := os.WriteFile(filepath.Join(dir, tk.name), []byte(`{"token":"SOMEONE","pid":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if head, err := tk.IsHead(); head || !errors.Is(err, ErrTicketLost) {
		t.Errorf("IsHead() = %v, %v; want ErrTicketLost", head, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Ahead(); !errors.Is(err, ErrTicketLost) {
		t.Errorf("Ahead() with the directory gone = %v, want ErrTicketLost", err)
	}
}

func TestQueueConcurrentEnqueue(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[uint64]bool{}
	)
	for range n {
		wg.Go(func() {
			tk, err := Enqueue(dir, 1)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seqs[tk.Seq] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(seqs) != n {
		t.Errorf("%d distinct places for %d tickets", len(seqs), n)
	}
}

// Waiters lists the live tickets in queue order, by Ahead's rule, each
// with the user that owns its file.
func TestWaiters(t *testing.T) {
	me, euid := os.Getpid(), os.Geteuid()
	at := func(min int) time.Time { return time.Date(2026, 11, 29, 9, min, 0, 0, time.UTC) }
	// ticket is what a waiter of process pid writes, plus a "uid" field
	// that a forger would add: the file's owner is the user, never it.
	ticket := func(pid int, gpus, min int) map[string]any {
		return map[string]any{"token": fmt.Sprintf("T%dX%d", gpus, min), "gpus": gpus, "pid": pid,
			"start": startTime(pid), "created": at(min), "uid": 4242}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // dir does not exist yet
		want  []Waiter
	}{
		{
			name:  "no state directory",
			setup: func(*testing.T, string) {},
		},
		{
			name:  "empty",
			setup: func(t *testing.T, dir string) { mkdir(t, dir, 0o1777) },
		},
		{
			name: "in order, the dead left out",
			setup: func(t *testing.T, dir string) {
				mkdir(t, dir, 0o1777)
				// Written out of order: the sequence decides, not the file's age.
				forge(t, dir, ticketName(7), ticket(me, 1, 3))
				forge(t, dir, ticketName(3), ticket(deadPID(t), 4, 1))
				forge(t, dir, ticketName(2), ticket(me, 2, 2))
				forge(t, dir, ticketName(12), ticket(me, 8, 0))
			},
			want: []Waiter{
				{Position: 1, UID: euid, GPUs: 2, Since: at(2), PID: me},
				{Position: 2, UID: euid, GPUs: 1, Since: at(3), PID: me},
				{Position: 3, UID: euid, GPUs: 8, Since: at(0), PID: me},
			},
		},
		{
			name: "not waiters",
			setup: func(t *testing.T, dir string) {
				mkdir(t, dir, 0o1777)
				sleep := started(t, exec.Command("sleep", "60")).Process.Pid
				zpid, _ := zombie(t)
				forge(t, dir, ticketName(1), ticket(sleep, 1, 1))
				forge(t, dir, ticketName(2), ticket(zpid, 1, 2))
				forge(t, dir, ticketName(3), "garbage")
				forge(t, dir, "ticket-4", ticket(me, 1, 4))
				forge(t, dir, ticketName(5), ticket(me, 1, 5))
			},
			want: []Waiter{{Position: 1, UID: euid, GPUs: 1, Since: at(5), PID: me}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			tc.setup(t, dir)
			got, err := Waiters(dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Waiters() (-want +got):\n%s", diff)
			}
		})
	}
}

// Waiters agrees with Ahead: each waiter's position is one more than the
// tickets ahead of it, and a newcomer comes last.
func TestWaitersAgreesWithAhead(t *testing.T) {
	dir := t.TempDir()
	if _, err := enqueue(dir, deadPID(t), 1); err != nil {
		t.Fatal(err)
	}
	a, b := enqueueT(t, dir), enqueueT(t, dir)
	got, err := Waiters(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Position != ahead(t, a)+1 || got[1].Position != ahead(t, b)+1 {
		t.Errorf("Waiters() = %+v; Ahead() = %d, %d", got, ahead(t, a), ahead(t, b))
	}
	if err := a.Leave(); err != nil {
		t.Fatal(err)
	}
	if got, err := Waiters(dir); err != nil || len(got) != 1 || got[0].Position != 1 {
		t.Errorf("Waiters() after the head left = %+v, %v", got, err)
	}
}

// The user behind a ticket is its file's owner: another user's ticket
// shows that user whatever it says, and one that names a process of
// another user than its owner is no waiter.
func TestWaitersOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	bin, _ := helperSetup(t, 0o755)
	theirs := started(t, asNobody(t, bin, "sleep")).Process.Pid
	dir := t.TempDir()
	created := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for i, pid := range []int{theirs, os.Getpid()} {
		name := ticketName(uint64(i + 1))
		forge(t, dir, name, map[string]any{"token": "NOBODYS", "gpus": 2, "pid": pid, "start": startTime(pid),
			"created": created, "uid": 0})
		if err := os.Chown(filepath.Join(dir, name), nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Waiters(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Waiter{{Position: 1, UID: nobody, GPUs: 2, Since: created, PID: theirs}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Waiters() (-want +got):\n%s", diff)
	}
}
