package holders

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/perceptron/docker-perceptron/internal/labels"
)

// RemoveAPI is the part of the Docker API that RemoveUnstarted uses.
type RemoveAPI interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
}

// RemoveUnstarted removes the container that a `run` with the claim token
// created and could not start: it exists only for that run, and would hold
// its GPUs for nothing. It returns the IDs removed.
func RemoveUnstarted(ctx context.Context, api RemoveAPI, token string) ([]string, error) {
	res, err := api.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", labels.Claim+"="+token).Add("status", string(container.StateCreated)),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list the container that did not start: %w", err)
	}
	var removed []string
	for _, c := range res.Items {
		if c.Labels[labels.Claim] != token || c.State != container.StateCreated {
			continue
		}
		if _, err := api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			return removed, fmt.Errorf("cannot remove container %s, which did not start: %w", c.ID, err)
		}
		removed = append(removed, c.ID)
	}
	return removed, nil
}
