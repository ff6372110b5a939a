package claims_test

import (
	"context"
	"time"

	"github.com/perceptron/docker-perceptron/internal/claims"
)

// The run command's claim, with --wait: queue, then under the lock see what
// is held, choose, lease, create the container (its label carries the claim),
// and release the lease.
func Example() {
	ctx := context.Background()
	dir := claims.StateDir()

	ticket, err := claims.Enqueue(dir)
	if err != nil {
		return
	}
	defer ticket.Leave()
	for {
		unlock, err := claims.Lock(ctx, dir)
		if err != nil {
			return
		}
		if head, _ := ticket.IsHead(); head {
			leases, _ := claims.ActiveLeases(dir, time.Now())
			_ = leases // with containers' labels and the inventory: what is taken
			chosen := []string{"GPU-…"}
			if len(chosen) > 0 { // enough free
				l := claims.NewLease(chosen, time.Now(), claims.DefaultLeaseTTL)
				if err := claims.WriteLease(dir, l); err == nil {
					ticket.Leave()
					// docker create … --label …=l.Token, then:
					claims.Release(dir, l.Token)
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
