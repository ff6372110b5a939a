package alloc

import (
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// A waiter says where it stands each time that changes, and only then:
// two requests ahead, then one, then it is served.
func TestClaimWaitSaysEachNewPosition(t *testing.T) {
	a := newAllocator(t, fakeHost(1), &daemon{})
	notes := make(chan string, 100)
	a.Waiting = func(s string) { notes <- s }
	first, err := ledger.Enqueue(a.StateDir, 1) // this process: alive
	assert.NilError(t, err)
	second, err := ledger.Enqueue(a.StateDir, 1)
	assert.NilError(t, err)

	next := func(want string) {
		t.Helper()
		select {
		case got := <-notes:
			assert.Equal(t, got, want)
		case <-time.After(5 * time.Second):
			t.Fatalf("the waiter did not say %q", want)
		}
		// Many polls (10 ms each) later, nothing new to say: nothing said.
		time.Sleep(200 * time.Millisecond)
		assert.Equal(t, len(notes), 0, "the waiter repeated itself")
	}

	got := waitForOne(t, a)
	next("waiting for GPUs: 2 earlier request(s) in line on this host")
	assert.NilError(t, first.Leave())
	next("waiting for GPUs: 1 earlier request(s) in line on this host")
	assert.NilError(t, second.Leave())
	select {
	case err := <-got:
		assert.NilError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not served once the line was empty")
	}
	assert.Equal(t, len(notes), 0)
}
