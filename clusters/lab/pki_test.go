package lab

import (
	"crypto/x509"
	"encoding/pem"
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
	p := pki{dir: filepath.Join(t.TempDir(), "pki")}
	if err := p.generate("unit"); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, p.path(caCert))
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	serving := readCert(t, p.path(apiserverCert))
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
		{adminCert, "kpbench-admin", []string{"system:masters"}},
		{kubeProxyCert, "system:kube-proxy", nil},
	}
	for _, tt := range tests {
		c := readCert(t, p.path(tt.file))
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s does not verify as a client certificate: %v", tt.file, err)
		}
		if c.Subject.CommonName != tt.cn || !slices.Equal(c.Subject.Organization, tt.groups) {
			t.Errorf("%s subject = %v, want CN %s groups %v", tt.file, c.Subject, tt.cn, tt.groups)
		}
	}
	for _, f := range []string{caKey, apiserverKey, adminKey, kubeProxyKey, serviceAcctKey} {
		st, err := os.Stat(p.path(f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := p.writeKubeconfig(kc, "https://127.0.0.1:4321", "kpbench-admin", adminCert, adminKey); err != nil {
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
