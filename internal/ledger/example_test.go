package ledger_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// A claim with --wait, as internal/alloc makes it: join the line; when
// first, under the lock, see what is held, choose and lease; leave the line;
// create the container (its labels carry the claim), then release the lease.
func Example() {
	tmp, err := os.MkdirTemp("", "ledger-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "state") // created, mode 1777, on first use

	ticket, err := ledger.Enqueue(dir, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	head, err := ticket.IsHead()
	fmt.Println("first in line:", head, err)

	unlock, err := ledger.Lock(context.Background(), dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	held, _ := ledger.ActiveLeases(dir, time.Now()) // with the containers: what is taken
	fmt.Println("leased before:", len(held))
	l := ledger.NewLease([]string{"GPU-0"}, time.Now(), ledger.DefaultLeaseTTL)
	fmt.Println("lease written:", ledger.WriteLease(dir, l))
	unlock()
	fmt.Println("left the line:", ticket.Leave())

	held, _ = ledger.ActiveLeases(dir, time.Now())
	fmt.Println("leased:", held[0].UUIDs)
	// docker create --label com.perceptron.claim=TOKEN …, then:
	fmt.Println("released:", ledger.Release(dir, l.Token))
	held, _ = ledger.ActiveLeases(dir, time.Now())
	fmt.Println("leased after:", len(held))
	// Output:
	// first in line: true <nil>
	// leased before: 0
	// lease written: <nil>
	// left the line: <nil>
	// leased: [GPU-0]
	// released: <nil>
	// leased after: 0
}
