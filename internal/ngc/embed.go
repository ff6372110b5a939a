package ngc

import (
	_ "embed"
	"sync"
)

var (
	//go:embed releases.tsv
	releasesTSV []byte
	//go:embed images.tsv
	imagesTSV []byte
)

var defaultTable = sync.OnceValues(func() (Table, error) { return Parse(releasesTSV, imagesTSV) })

// Default is the table kept in this repository (releases.tsv, images.tsv).
func Default() (Table, error) { return defaultTable() }
