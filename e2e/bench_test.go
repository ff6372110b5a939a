package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkBusyDaemon measures, against a private dockerd holding 0, 500
// and 2000 other (created) containers, through the docker CLI, medians of
// runs interleaved in one run so that the noise of this shared machine
// falls on all alike (run it with -benchtime 1x: make bench):
//
//   - create: "docker perceptron create --gpus auto" warm (the user's cache
//     knows the daemon) and cold (no cache), against the stock "docker
//     create --gpus device=UUID";
//   - gpus: "docker perceptron gpus" warm and cold, against "docker ps -a";
//   - concurrent (0 and 2000): 16 "docker perceptron run -d --gpus auto"
//     at once against 16 plain "docker run -d --gpus device=…", and how
//     long each claim held the host's lock (median, max);
//   - churn (500): a create right after 20 short-lived --rm containers came
//     and went, against a warm one.
//
// The GPU inventory is the fake NVML's: a real NVML's initialisation time
// (tens of milliseconds without persistence mode) is not included.
func BenchmarkBusyDaemon(b *testing.B) {
	d := startDaemon(b, DaemonOptions{})
	e := newEnvOn(b, d)
	spec := sampleNVML(16)
	e.FakeNVML = writeFakeNVML(b, spec)
	cache, lockLog := b.TempDir(), filepath.Join(b.TempDir(), "lock.log")
	e.Extra = append(e.Extra, "XDG_CACHE_HOME="+cache, "PERCEPTRON_TEST_LOCK_LOG="+lockLog)
	others := 0
	for _, n := range []int{0, 500, 2000} {
		fill(b, e, n-others)
		others = n
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			for b.Loop() {
				benchCreate(b, e, spec, cache)
				benchGpus(b, e, cache)
				if n == 0 || n == 2000 {
					benchConcurrent(b, e, spec, lockLog)
				}
				if n == 500 {
					benchChurn(b, e)
				}
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// timed runs docker with args and returns how long it took and its output.
func timed(e *Env, args ...string) (time.Duration, string) {
	start := time.Now()
	out := e.MustDocker(args...)
	return time.Since(start), out
}

func benchCreate(b *testing.B, e *Env, spec FakeNVML, cache string) {
	const reps = 9
	e.MustDocker("rm", e.MustDocker("perceptron", "create", "--gpus", "auto", testImage, "true")) // warm-up
	deviceArg := `"device=` + spec.GPUs[0].UUID + `"`
	var warm, cold, stock []time.Duration
	for range reps {
		d, id := timed(e, "perceptron", "create", "--gpus", "auto", testImage, "true")
		warm = append(warm, d)
		e.MustDocker("rm", id)
		d, id = timed(e, "create", "--gpus", deviceArg, testImage, "true")
		stock = append(stock, d)
		e.MustDocker("rm", id)
		_ = os.RemoveAll(filepath.Join(cache, "docker-perceptron"))
		d, id = timed(e, "perceptron", "create", "--gpus", "auto", testImage, "true")
		cold = append(cold, d)
		e.MustDocker("rm", id)
	}
	mw, mc, mst := median(warm), median(cold), median(stock)
	b.ReportMetric(ms(mst), "create-stock-ms")
	b.ReportMetric(ms(mw-mst), "create-warm-added-ms")
	b.ReportMetric(ms(mc-mst), "create-cold-added-ms")
}

func benchGpus(b *testing.B, e *Env, cache string) {
	const reps = 9
	var warm, cold, ps []time.Duration
	e.MustDocker("perceptron", "gpus")
	for range reps {
		d, _ := timed(e, "perceptron", "gpus")
		warm = append(warm, d)
		d, _ = timed(e, "ps", "-a")
		ps = append(ps, d)
		_ = os.RemoveAll(filepath.Join(cache, "docker-perceptron"))
		d, _ = timed(e, "perceptron", "gpus")
		cold = append(cold, d)
	}
	b.ReportMetric(ms(median(warm)), "gpus-warm-ms")
	b.ReportMetric(ms(median(cold)), "gpus-cold-ms")
	b.ReportMetric(ms(median(ps)), "ps-a-ms")
}

// benchConcurrent starts 16 runs at once, with the GPU choice and with
// docker's own --gpus device=…, five rounds each, interleaved.
func benchConcurrent(b *testing.B, e *Env, spec FakeNVML, lockLog string) {
	const rounds = 5
	e.MustDocker("perceptron", "gpus") // the cache knows the daemon
	burst := func(args func(i int) []string) time.Duration {
		var wg sync.WaitGroup
		ids := make([]string, 16)
		start := time.Now()
		for i := range ids {
			wg.Go(func() { ids[i] = strings.TrimSpace(e.MustDocker(args(i)...)) })
		}
		wg.Wait()
		d := time.Since(start)
		e.MustDocker(append([]string{"rm", "-f"}, ids...)...)
		return d
	}
	_ = os.Remove(lockLog)
	var auto, plain []time.Duration
	runAuto := func() {
		auto = append(auto, burst(func(int) []string {
			return []string{"perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "60"}
		}))
	}
	runPlain := func() {
		plain = append(plain, burst(func(i int) []string {
			return []string{"run", "-d", "--gpus", `"device=` + spec.GPUs[i].UUID + `"`, testImage, "sleep", "60"}
		}))
	}
	for r := range rounds {
		// ABBA: neither kind always follows the other's removal of 16
		// containers.
		if r%2 == 0 {
			runAuto()
			runPlain()
		} else {
			runPlain()
			runAuto()
		}
	}
	held := lockHolds(b, lockLog)
	b.ReportMetric(ms(median(auto)), "concurrent16-auto-ms")
	b.ReportMetric(ms(median(plain)), "concurrent16-plain-ms")
	b.ReportMetric(float64(median(auto))/float64(median(plain)), "concurrent16-ratio")
	b.ReportMetric(ms(median(held)), "lock-hold-median-ms")
	b.ReportMetric(ms(slices.Max(held)), "lock-hold-max-ms")
}

// lockHolds reads the lock hold times the plugin logged (test builds).
func lockHolds(b *testing.B, path string) []time.Duration {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var out []time.Duration
	for _, f := range strings.Fields(string(data)) {
		us, err := strconv.Atoi(f)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Duration(us)*time.Microsecond)
	}
	if len(out) == 0 {
		b.Fatal("no lock hold time logged")
	}
	return out
}

// benchChurn times a create right after 20 short-lived --rm containers came
// and went, against one right after another create.
func benchChurn(b *testing.B, e *Env) {
	const reps = 5
	var after, warm []time.Duration
	for range reps {
		d, id := timed(e, "perceptron", "create", "--gpus", "auto", testImage, "true")
		warm = append(warm, d)
		e.MustDocker("rm", id)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 5 {
					e.MustDocker("run", "--rm", testImage, "true")
				}
			})
		}
		wg.Wait()
		d, id = timed(e, "perceptron", "create", "--gpus", "auto", testImage, "true")
		after = append(after, d)
		e.MustDocker("rm", id)
	}
	b.ReportMetric(ms(median(after)-median(warm)), "churn-added-ms")
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
