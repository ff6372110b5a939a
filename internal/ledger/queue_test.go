package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
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
