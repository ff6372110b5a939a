package fleet

import (
	"cmp"
	"fmt"
	"slices"
)

// Answer is one host's offer, or why it gave none.
type Answer struct {
	Host  Host
	Offer Offer
	Err   error
}

// Rank orders the hosts that can take a job of count GPUs, best first, and
// says for each other host why not. Best: the image already there (no
// pull), then the fewest waiters in its line, then the best-linked set of
// GPUs, then the most GPUs left free (the others stay whole), then the
// name. A host that can take it answered, has count free GPUs, and a
// driver that runs the image.
func Rank(answers []Answer, count int) (ranked []Answer, refused map[string]string) {
	refused = map[string]string{}
	for _, a := range answers {
		switch {
		case a.Err != nil:
			refused[a.Host.Context] = a.Err.Error()
		case a.Offer.Error != "":
			refused[a.Host.Context] = a.Offer.Error
		case a.Offer.ImageRefused != "":
			refused[a.Host.Context] = a.Offer.ImageRefused
		case a.Offer.Free < count:
			refused[a.Host.Context] = fmt.Sprintf("%d of %d GPUs free", a.Offer.Free, len(a.Offer.GPUs))
		default:
			ranked = append(ranked, a)
		}
	}
	slices.SortStableFunc(ranked, func(x, y Answer) int {
		return cmp.Or(
			-cmp.Compare(boolInt(x.Offer.ImagePresent), boolInt(y.Offer.ImagePresent)),
			cmp.Compare(x.Offer.Waiters, y.Offer.Waiters),
			-cmp.Compare(x.Offer.Score, y.Offer.Score),
			-cmp.Compare(x.Offer.Free-count, y.Offer.Free-count),
			cmp.Compare(x.Host.Context, y.Host.Context),
		)
	})
	return ranked, refused
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
