package commands

import (
	"fmt"
	"os"
	"os/user"

	"github.com/docker/cli/cli/command"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/policy"
)

// loadPolicy reads the site's policy. A file that is not used (not safe to
// trust, or not valid) is reported on stderr, and there is no policy.
func loadPolicy(dockerCLI command.Cli, deps Deps) policy.Policy {
	if deps.PolicyPath == "" {
		return policy.Policy{}
	}
	p, err := policy.Load(deps.PolicyPath)
	if err != nil {
		_, _ = fmt.Fprintln(dockerCLI.Err(), "WARNING: "+err.Error())
	}
	return p
}

// whoAmI is the user a claim is for: the effective user, its name as the
// labels give it, and its Unix groups (for the policy's group limits).
func whoAmI(deps Deps) alloc.Who {
	w := alloc.Who{UID: os.Geteuid(), Name: deps.User()}
	u, err := user.LookupId(fmt.Sprint(w.UID))
	if err != nil {
		return w
	}
	ids, err := u.GroupIds()
	if err != nil {
		return w
	}
	for _, id := range ids {
		if g, err := user.LookupGroupId(id); err == nil {
			w.Groups = append(w.Groups, g.Name)
		}
	}
	return w
}
