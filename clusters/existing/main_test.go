package existing

import (
	"os"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/kpbench/kpbench/clusters/lab/apitest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	apitest.StopShared()
	os.Exit(code)
}

// realAPIServer returns the package's shared real apiserver, or skips.
func realAPIServer(t *testing.T) *rest.Config { return apitest.Shared(t) }

const k8sVersion = apitest.Version
