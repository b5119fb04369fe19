package cpuset

import (
	"errors"
	"slices"
	"testing"
)

func TestParseAndFormat(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		want   []int
		format string
		bad    bool
	}{
		{name: "single", in: "1", want: []int{1}, format: "1"},
		{name: "range", in: "0-2", want: []int{0, 1, 2}, format: "0-2"},
		{name: "range and single", in: "0-1,3", want: []int{0, 1, 3}, format: "0-1,3"},
		{name: "mixed", in: "0,2-3,7", want: []int{0, 2, 3, 7}, format: "0,2-3,7"},
		{name: "unsorted with duplicates", in: "5,2-3,3", want: []int{2, 3, 5}, format: "2-3,5"},
		{name: "spaces", in: " 0 , 2-3 ", want: []int{0, 2, 3}, format: "0,2-3"},
		{name: "empty", in: "", bad: true},
		{name: "backwards range", in: "3-1", bad: true},
		{name: "negative", in: "-1", bad: true},
		{name: "word", in: "all", bad: true},
		{name: "trailing comma", in: "1,", bad: true},
		{name: "open range", in: "1-", bad: true},
		{name: "huge range", in: "0-100000", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBad) {
					t.Fatalf("Parse(%q) = %v, %v; want ErrBad", tc.in, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if f := Format(got); f != tc.format {
				t.Errorf("Format(%v) = %q, want %q", got, f, tc.format)
			}
		})
	}
	if got := Format([]int{3, 0, 1, 2, 7, 9, 10}); got != "0-3,7,9-10" {
		t.Errorf("Format of an unsorted list = %q", got)
	}
	if got := Format(nil); got != "" {
		t.Errorf("Format(nil) = %q", got)
	}
}
