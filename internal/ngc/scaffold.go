package ngc

import (
	"fmt"
	"strings"
)

// Scaffold is what `docker perceptron init` writes: file name to content.
type Scaffold struct {
	Dockerfile, DockerIgnore, Requirements string
}

// NewScaffold returns the files of a project built FROM base, a framework
// image; why says in a comment line why that base.
func NewScaffold(base, why string) Scaffold {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by docker perceptron init. %s\n", why)
	fmt.Fprintf(&b, "FROM %s\n\n", base)
	b.WriteString(`WORKDIR /workspace/app

# Dependencies first, so that this layer is rebuilt only when
# requirements.txt changes (-r: install what the file lists).
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# No CUDA_VISIBLE_DEVICES here: GPUs are chosen when the container runs
# (docker perceptron run --gpus auto), never baked into the image. CUDA then
# numbers the GPUs it is given in PCI bus order, as nvidia-smi does.
ENV CUDA_DEVICE_ORDER=PCI_BUS_ID
`)
	return Scaffold{
		Dockerfile: b.String(),
		DockerIgnore: `# Kept out of the build context: docker build sends everything else to the daemon.
.git
**/__pycache__
**/*.pyc
.ipynb_checkpoints
.venv
data
checkpoints
runs
*.ckpt
*.pt
`,
		Requirements: "# One Python package per line, e.g. transformers==4.44.2; the base image has the framework.\n",
	}
}
