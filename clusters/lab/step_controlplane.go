package lab

// The credentials and control-plane steps: the lab's PKI and kubeconfigs,
// etcd and kube-apiserver in the cp namespace, and the forwarder that makes
// the apiserver reachable on loopback.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/lab/netns"
	"github.com/kpbench/kpbench/clusters/lab/pki"
	"github.com/kpbench/kpbench/internal/httpget"
)

func (l *Lab) pki() pki.Dir { return pki.Dir(filepath.Join(l.dir, "pki")) }

// kubeconfigContext names the cluster and context of a lab's kubeconfigs.
const kubeconfigContext = "kpbench-lab"

func (l *Lab) kubeProxyKubeconfig() string { return filepath.Join(l.dir, "kube-proxy.kubeconfig") }

func (l *Lab) stepCredentials(ctx context.Context, _ build.Binaries) error {
	p := l.pki()
	if err := p.Generate(l.cfg.Name, APIServerIP.AsSlice(), KubernetesIP.AsSlice()); err != nil {
		return err
	}
	server := "https://" + net.JoinHostPort(APIServerIP.String(), strconv.Itoa(APIServerPort))
	return p.WriteKubeconfig(l.kubeProxyKubeconfig(), server, kubeconfigContext, pki.KubeProxyUser, pki.KubeProxyCert, pki.KubeProxyKey)
}

// start starts a component and records it.
func (l *Lab) start(spec startSpec) (Proc, error) {
	spec.log = l.logPath(spec.name)
	p, err := startProc(spec)
	if err != nil {
		return Proc{}, err
	}
	if err := l.update(func(s *State) { s.setProc(p) }); err != nil {
		return p, err
	}
	return p, nil
}

func (l *Lab) stepControlPlane(ctx context.Context, bins build.Binaries) error {
	st, _ := l.state()
	cp := l.nsName("cp")
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(EtcdClientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(EtcdPeerPort)
	etcd, err := l.start(startSpec{
		name: CompEtcd, netns: cp, cpus: st.OtherCPUs,
		args: []string{bins.Etcd,
			"--name=kpbench",
			"--data-dir=" + filepath.Join(l.dir, "etcd"),
			"--listen-client-urls=" + etcdURL,
			"--advertise-client-urls=" + etcdURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=kpbench=" + peerURL,
			// A lab's data is disposable: skip fsync, which dominates
			// write latency when thousands of Services are created.
			"--unsafe-no-fsync",
			"--quota-backend-bytes=" + strconv.Itoa(8<<30),
			"--log-level=warn",
		},
	})
	if err != nil {
		return err
	}
	p := l.pki()
	apiserver, err := l.start(startSpec{
		name: CompAPIServer, netns: cp, cpus: st.OtherCPUs,
		args: []string{bins.KubeAPIServer,
			"--etcd-servers=" + etcdURL,
			"--bind-address=0.0.0.0",
			"--secure-port=" + strconv.Itoa(APIServerPort),
			"--advertise-address=" + APIServerIP.String(),
			"--service-cluster-ip-range=" + ServiceCIDR.String(),
			"--tls-cert-file=" + p.Path(pki.APIServerCert),
			"--tls-private-key-file=" + p.Path(pki.APIServerKey),
			"--client-ca-file=" + p.Path(pki.CACert),
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + p.Path(pki.ServiceAcctPub),
			"--service-account-signing-key-file=" + p.Path(pki.ServiceAcctKey),
			"--authorization-mode=RBAC",
			// Nothing admits or mutates Services in the lab: skip the
			// plugins that would only add work to every write.
			"--disable-admission-plugins=ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,ResourceQuota",
			"--cert-dir=" + filepath.Join(l.dir, "pki"),
			"--profiling=false",
			"--v=1",
		},
	})
	if err != nil {
		return err
	}

	cpPath := netns.Path(cp)
	etcdClient := netns.HTTPClient(cpPath, nil, 3*time.Second)
	if err := waitFor(ctx, etcd, l.cfg.ReadyTimeout, "healthy", func(ctx context.Context) error {
		body, err := httpget.Get(ctx, etcdClient, etcdURL+"/health")
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), `"health":"true"`) {
			return fmt.Errorf("health: %s", body)
		}
		return nil
	}); err != nil {
		return err
	}

	tlsCfg, err := l.adminTLS()
	if err != nil {
		return err
	}
	apiClient := netns.HTTPClient(cpPath, tlsCfg, 3*time.Second)
	apiURL := "https://" + net.JoinHostPort(APIServerIP.String(), strconv.Itoa(APIServerPort))
	if err := waitFor(ctx, apiserver, l.cfg.ReadyTimeout, "ready", func(ctx context.Context) error {
		_, err := httpget.Get(ctx, apiClient, apiURL+"/readyz")
		return err
	}); err != nil {
		return err
	}

	// The forwarder: a loopback port of the root namespace whose
	// connections are dialed to the apiserver inside the cp namespace. The
	// listener is made here and handed over, so its port is known at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening on loopback for the apiserver forwarder: %w", err)
	}
	lnFile, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		return fmt.Errorf("handing the forwarder its listener: %w", err)
	}
	fwd, err := l.start(startSpec{
		name: CompForwarder, cpus: st.OtherCPUs, files: []*os.File{lnFile},
		args: []string{st.KpbenchBin, "lab", "forward", "--listen-fd=3", "--netns=" + cpPath, "--to=" + net.JoinHostPort(APIServerIP.String(), strconv.Itoa(APIServerPort))},
	})
	port := ln.Addr().(*net.TCPAddr).Port
	lnFile.Close()
	if err != nil {
		return err
	}
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	if err := l.update(func(s *State) { s.APIServerURL = server }); err != nil {
		return err
	}
	if err := p.WriteKubeconfig(l.KubeconfigPath(), server, kubeconfigContext, pki.AdminUser, pki.AdminCert, pki.AdminKey); err != nil {
		return err
	}
	rootClient := netns.HTTPClient("", tlsCfg, 3*time.Second)
	return waitFor(ctx, fwd, 20*time.Second, "forwarding to the apiserver", func(ctx context.Context) error {
		_, err := httpget.Get(ctx, rootClient, server+"/readyz")
		return err
	})
}

// adminTLS is a TLS client configuration with the admin credentials.
func (l *Lab) adminTLS() (*tls.Config, error) {
	p := l.pki()
	cert, err := tls.LoadX509KeyPair(p.Path(pki.AdminCert), p.Path(pki.AdminKey))
	if err != nil {
		return nil, fmt.Errorf("loading admin credentials: %w", err)
	}
	caPEM, err := os.ReadFile(p.Path(pki.CACert))
	if err != nil {
		return nil, fmt.Errorf("loading lab CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func (l *Lab) clientset() (*kubernetes.Clientset, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}
