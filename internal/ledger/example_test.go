package ledger_test

import (
	"context"
	"time"

	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// The run command's claim, with --wait: queue, then under the lock see what
// is held, choose, lease, create the container (its label carries the claim),
// and release the lease.
func Example() {
	ctx := context.Background()
	dir := ledger.StateDir()

	ticket, err := ledger.Enqueue(dir)
	if err != nil {
		return
	}
	defer ticket.Leave()
	for {
		unlock, err := ledger.Lock(ctx, dir)
		if err != nil {
			return
		}
		if head, _ := ticket.IsHead(); head {
			leases, _ := ledger.ActiveLeases(dir, time.Now())
			_ = leases // with containers' labels and the inventory: what is taken
			chosen := []string{"GPU-…"}
			if len(chosen) > 0 { // enough free
				l := ledger.NewLease(chosen, time.Now(), ledger.DefaultLeaseTTL)
				if err := ledger.WriteLease(dir, l); err == nil {
					ticket.Leave()
					// docker create … --label …=l.Token, then:
					ledger.Release(dir, l.Token)
				}
				unlock()
				return
			}
		}
		unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
