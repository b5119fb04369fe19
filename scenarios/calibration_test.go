package scenarios

import (
	"os"
	"reflect"
	"testing"
)

// TestCalibrationTracksNightly: the A/A calibration scenario must measure
// what the nightly gate measures — modes, variants, targets, rate,
// repetitions, order — scaled down only in its steps and window lengths,
// or its false-alarm rate says nothing about the gate.
func TestCalibrationTracksNightly(t *testing.T) {
	data, err := os.ReadFile("../hack/calibrate/nightly-aa.yaml")
	if err != nil {
		t.Fatal(err)
	}
	aa, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Resolve("nightly")
	if err != nil {
		t.Fatal(err)
	}
	a, b := aa.Spec, n.Spec
	a.Services, b.Services = nil, nil
	a.Load.Duration, b.Load.Duration = 0, 0
	a.Load.Warmup, b.Load.Warmup = nil, nil
	if !reflect.DeepEqual(a, b) {
		t.Errorf("calibration spec %+v\ndiffers from nightly %+v\nbeyond steps and window lengths", a, b)
	}
}
