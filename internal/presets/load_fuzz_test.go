package presets_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perceptron/docker-perceptron/internal/presets"
)

// FuzzLoad reads any file as a user's preset file: Load never panics, never
// takes long on a small file, and its errors are one line that does not
// repeat the file nor quote Go's parsers; a file set aside leaves the
// built-in presets working. `go test -fuzz FuzzLoad ./internal/presets/` searches;
// a plain test run reads the seeds.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		string(presets.Builtin),
		"",
		"---\n",
		"mine:\n  extends: pytorch-train\n  shm-size: 16g\n  env: {NCCL_DEBUG: WARN, HTTP_PROXY: }\n  p: [\"6006\"]\n",
		"a:\n  extends: b\nb:\n  extends: a\n",
		"a:\n  extends: nope\n",
		"a:\n  rm: true\na:\n  rm: false\n",
		"a:\n  rm: true\n  rm: false\n",
		"a:\n  rm: true\n---\nb:\n  rm: true\n",
		"a:\n  shm-size: lots\n  ulimit: [memlock=-1, stack]\n",
		"a: &x\n  rm: true\nb: *x\nc:\n  <<: *x\n",
		"? [a, b]\n: {rm: true}\n",
		"a:\n  \"x\\ny\": [\"1\\n2\"]\n",
		"a:\n  training: sometimes\n",
		"a:\n  rm: yes\n  ulimit: memlock=x\n",
		"a:\n  health-interval: 5\nb:\n  extends: a\n",
		"a:\n  gpus: count=x\n  umask: 9\n",
		"a:\n  extends: tf-train\ntf-train:\n  extends: a\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "presets.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files := []presets.File{{Path: path, Source: presets.SourceUser}}
		for _, opts := range []presets.Options{{}, {Flags: runFlags(t), Special: special}} {
			start := time.Now()
			store, err := presets.Load(presets.Builtin, files, opts)
			if len(data) <= 64<<10 {
				if elapsed := time.Since(start); elapsed > 2*time.Second {
					t.Errorf("loading %d bytes took %v", len(data), elapsed)
				}
			}
			if err != nil {
				msg := strings.ReplaceAll(err.Error(), path, "FILE")
				if strings.Contains(msg, "strconv.") || strings.Contains(msg, "time: ") {
					t.Errorf("error quotes Go: %q", msg)
				}
				if strings.ContainsAny(msg, "\n\r") {
					t.Errorf("error is more than one line: %q", msg)
				}
				if len(msg) > 2048 {
					t.Errorf("error is %d bytes: %.300q…", len(msg), msg)
				}
				if len(data) > 100 && strings.Contains(msg, string(data)) {
					t.Errorf("error repeats the file: %.300q…", msg)
				}
			}
			if store == nil {
				t.Fatalf("no store: %v", err)
			}
			for _, name := range store.Names() {
				if _, err := store.Expand(name); err != nil {
					t.Errorf("Expand(%q) after Load: %v", name, err)
				}
				store.Training(name)
			}
		}
	})
}
