package loadgen

import (
	"math"
	"strconv"
)

func nan() float64 { return math.NaN() }
func inf() float64 { return math.Inf(1) }

func itoa(i int) string { return strconv.Itoa(i) }
