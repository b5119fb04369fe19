package lab

// The backend steps: one `kpbench serve` per backend namespace, and the
// check that the client node reaches every one.

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/internal/httpget"
)

func (l *Lab) stepBackends(ctx context.Context, _ build.Binaries) error {
	st, _ := l.state()
	for i := 0; i < l.cfg.Backends; i++ {
		_, err := l.start(startSpec{
			name: backendComp(i), netns: l.nsName("b" + strconv.Itoa(i)), cpus: st.OtherCPUs,
			args: []string{st.KpbenchBin, "serve", "--listen=" + net.JoinHostPort(BackendIP(i).String(), strconv.Itoa(BackendPort))},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) stepCheckBackends(ctx context.Context, _ build.Binaries) error {
	st, _ := l.state()
	c := nodeHTTPClient(l.node(), 2*time.Second)
	for i := range st.Backends {
		p, _ := st.proc(backendComp(i))
		url := "http://" + net.JoinHostPort(st.Backends[i], strconv.Itoa(BackendPort)) + "/"
		if err := waitFor(ctx, p, l.cfg.ReadyTimeout, "answering from the client node", func(ctx context.Context) error {
			_, err := httpget.Get(ctx, c, url)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}
