package preflight

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

func TestCommonBrand(t *testing.T) {
	tesla, geforce := gpus.Device{Brand: 2}, gpus.Device{Brand: 5}
	tests := []struct {
		devices []gpus.Device
		want    string
	}{
		{[]gpus.Device{tesla, tesla}, "tesla"},
		{[]gpus.Device{tesla, geforce}, ""},
		{[]gpus.Device{tesla, {Brand: -1}}, ""},
		{nil, ""},
	}
	for _, tc := range tests {
		assert.Check(t, is.Equal(commonBrand(tc.devices), tc.want))
	}
}
