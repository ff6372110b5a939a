package gpus

import (
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Session returns an opener of one NVML library, opened and initialised on
// first use and kept until done is called: the steps of one command then
// share it. Their own Init/Shutdown pairs (see Init and Load) only count
// references, as NVML's nvmlInit does.
func Session(open func() (nvml.Interface, error)) (_ func() (nvml.Interface, error), done func()) {
	var (
		once     sync.Once
		lib      nvml.Interface
		err      error
		shutdown func()
	)
	session := func() (nvml.Interface, error) {
		once.Do(func() {
			if lib, err = open(); err == nil {
				shutdown, err = Init(lib)
			}
		})
		return lib, err
	}
	return session, func() {
		if shutdown != nil {
			shutdown()
		}
	}
}
