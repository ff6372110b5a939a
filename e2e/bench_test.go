package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkCreateGPUAuto measures what "docker perceptron create --gpus
// auto" adds over the equivalent "docker create --gpus device=UUID", both
// through the docker CLI, with 0, 100 and 500 other containers on the
// daemon: the median of each over repeated runs, interleaved in one run so
// that the noise of this shared machine falls on all alike. It also times
// "docker perceptron create --gpus device=UUID", which has the cost of being
// a plugin (the docker CLI starts the plugin binary twice: for its metadata,
// then for the command) and of the pre-flight checks, without the choice:
// ms-added-by-auto is what the GPU choice and claim cost. Each iteration of
// b.N is one full measurement; run it with -benchtime 1x (make bench).
//
// The GPU inventory is the fake NVML's: a real NVML's initialisation time
// (tens of milliseconds without persistence mode) is not included.
func BenchmarkCreateGPUAuto(b *testing.B) {
	const reps = 15
	d := startDaemon(b, DaemonOptions{})
	e := newEnvOn(b, d)
	spec := sampleNVML(8)
	e.FakeNVML = writeFakeNVML(b, spec)
	others := 0
	for _, n := range []int{0, 100, 500} {
		fill(b, e, n-others)
		others = n
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			for b.Loop() {
				// Warm-up: the plugin's reservation cache learns the fillers.
				e.MustDocker("rm", e.MustDocker("perceptron", "create", "--gpus", "auto", testImage, "true"))
				var auto, device, stock []time.Duration
				timed := func(into *[]time.Duration, args ...string) {
					start := time.Now()
					id := e.MustDocker(args...)
					*into = append(*into, time.Since(start))
					e.MustDocker("rm", id)
				}
				deviceArg := `"device=` + spec.GPUs[0].UUID + `"`
				for range reps {
					timed(&auto, "perceptron", "create", "--gpus", "auto", testImage, "true")
					timed(&device, "perceptron", "create", "--gpus", deviceArg, testImage, "true")
					timed(&stock, "create", "--gpus", deviceArg, testImage, "true")
				}
				ma, md, ms := median(auto), median(device), median(stock)
				ms2 := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
				b.ReportMetric(ms2(ms), "ms-stock")
				b.ReportMetric(ms2(md), "ms-plugin-device")
				b.ReportMetric(ms2(ma), "ms-plugin-auto")
				b.ReportMetric(ms2(ma-ms), "ms-added")
				b.ReportMetric(ms2(ma-md), "ms-added-by-auto")
				b.ReportMetric(float64(ma)/float64(ms), "ratio")
			}
		})
	}
}

// fill creates n stopped-before-start containers, which are "live" for the
// GPU bookkeeping (a created container will get its GPUs when started).
func fill(b testing.TB, e *Env, n int) {
	b.Helper()
	var wg sync.WaitGroup
	work := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for range work {
				e.MustDocker("create", "--label", "filler=1", testImage, "true")
			}
		})
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	got := strings.Count(e.MustDocker("ps", "-aq", "--filter", "label=filler"), "\n") + 1
	if n > 0 && got < n {
		b.Fatalf("%d fillers, want at least %d", got, n)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
