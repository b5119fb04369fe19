package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPKI(t *testing.T) {
	p := Dir(filepath.Join(t.TempDir(), "pki"))
	if err := p.Generate("unit", net.ParseIP("198.18.0.2"), net.ParseIP("198.19.0.1")); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, p.Path(CACert))
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	serving := readCert(t, p.Path(APIServerCert))
	for _, host := range []string{"127.0.0.1", "198.18.0.2", "198.19.0.1", "kubernetes.default.svc", "localhost"} {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate not valid for %s: %v", host, err)
		}
	}
	tests := []struct {
		file   string
		cn     string
		groups []string
	}{
		{AdminCert, "kpbench-admin", []string{"system:masters"}},
		{KubeProxyCert, "system:kube-proxy", nil},
	}
	for _, tt := range tests {
		c := readCert(t, p.Path(tt.file))
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s does not verify as a client certificate: %v", tt.file, err)
		}
		if c.Subject.CommonName != tt.cn || !slices.Equal(c.Subject.Organization, tt.groups) {
			t.Errorf("%s subject = %v, want CN %s groups %v", tt.file, c.Subject, tt.cn, tt.groups)
		}
	}
	for _, f := range []string{CAKey, APIServerKey, AdminKey, KubeProxyKey, ServiceAcctKey} {
		st, err := os.Stat(p.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := p.WriteKubeconfig(kc, "https://127.0.0.1:4321", "kpbench-lab", AdminUser, AdminCert, AdminKey); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:4321" || len(cfg.CAData) == 0 || len(cfg.CertData) == 0 || len(cfg.KeyData) == 0 {
		t.Errorf("kubeconfig = host %s, ca %d cert %d key %d bytes", cfg.Host, len(cfg.CAData), len(cfg.CertData), len(cfg.KeyData))
	}
	if st, _ := os.Stat(kc); st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", st.Mode().Perm())
	}
}
