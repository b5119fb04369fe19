package report

import (
	"os"
	"os/exec"
	"testing"
)

func TestGenerateSweep(t *testing.T) {
	dir := copyFixture(t, "sweep")
	d, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Generate(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Files)
	if out := os.Getenv("KPBENCH_REPORT_OUT"); out != "" {
		exec.Command("cp", "-r", dir+"/.", out).Run()
	}
}
