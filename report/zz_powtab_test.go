package report

import (
	"fmt"
	"testing"
)

func TestPrintPowerTable(t *testing.T) {
	for _, m := range []int{8, 12} {
		for _, reps := range []int{5, 7, 10, 14, 20} {
			line := fmt.Sprintf("m=%d reps=%d:", m, reps)
			for _, cv := range []float64{0.05, 0.10, 0.15, 0.20} {
				line += fmt.Sprintf(" cv%.2f=%.3f", cv, gatePower(999, 4000, reps, m, cv, 1.3, 0.10))
			}
			fmt.Println(line)
		}
	}
	// smallest ratio caught with 80% at 7 reps, m=12, cv .15
	for _, r := range []float64{1.4, 1.5, 1.6, 1.7, 1.8} {
		fmt.Printf("ratio %.1f 7+7 m12 cv.15: %.3f\n", r, gatePower(998, 4000, 7, 12, 0.15, r, 0.10))
	}
}
