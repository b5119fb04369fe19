package lab

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// pki is a lab's credentials, generated per lab: a CA, the apiserver's
// serving certificate, client certificates for the admin (system:masters)
// and kube-proxy (system:kube-proxy, bound to system:node-proxier by the
// apiserver's default RBAC), and the service-account signing key.
type pki struct {
	dir string
}

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

// Files of a lab's pki directory.
const (
	caCert         = "ca.crt"
	caKey          = "ca.key"
	apiserverCert  = "apiserver.crt"
	apiserverKey   = "apiserver.key"
	adminCert      = "admin.crt"
	adminKey       = "admin.key"
	kubeProxyCert  = "kube-proxy.crt"
	kubeProxyKey   = "kube-proxy.key"
	serviceAcctKey = "sa.key"
	serviceAcctPub = "sa.pub"
)

type keyPair struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	keyPEM  []byte
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// sign issues a certificate for tmpl signed by ca (self-signed if ca is nil).
func sign(tmpl *x509.Certificate, ca *keyPair) (*keyPair, error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(10 * 365 * 24 * time.Hour)
	parent, signer := tmpl, crypto.Signer(key)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key, keyPEM: keyPEM}, nil
}

// generate writes a fresh set of credentials into p.dir.
func (p pki) generate(labName string) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("creating pki directory: %w", err)
	}
	ca, err := sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "kpbench-lab-" + labName + "-ca"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
	}, nil)
	if err != nil {
		return err
	}
	serving, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), APIServerIP.AsSlice(), KubernetesIP.AsSlice()},
	}, ca)
	if err != nil {
		return err
	}
	client := func(cn string, groups ...string) (*keyPair, error) {
		return sign(&x509.Certificate{
			Subject:     pkix.Name{CommonName: cn, Organization: groups},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, ca)
	}
	admin, err := client("kpbench-admin", "system:masters")
	if err != nil {
		return err
	}
	proxy, err := client("system:kube-proxy")
	if err != nil {
		return err
	}
	sa, saPEM, err := newKey()
	if err != nil {
		return err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(sa.Public())
	if err != nil {
		return fmt.Errorf("encoding service-account public key: %w", err)
	}
	files := map[string][]byte{
		caCert: ca.certPEM, caKey: ca.keyPEM,
		apiserverCert: serving.certPEM, apiserverKey: serving.keyPEM,
		adminCert: admin.certPEM, adminKey: admin.keyPEM,
		kubeProxyCert: proxy.certPEM, kubeProxyKey: proxy.keyPEM,
		serviceAcctKey: saPEM,
		serviceAcctPub: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
	}
	for name, data := range files {
		if err := os.WriteFile(p.path(name), data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for server authenticating with the
// client certificate cert/key, embedding the credentials so the file stands
// alone.
func (p pki) writeKubeconfig(path, server, user, cert, key string) error {
	read := func(name string) ([]byte, error) { return os.ReadFile(p.path(name)) }
	ca, err := read(caCert)
	if err != nil {
		return fmt.Errorf("reading CA: %w", err)
	}
	crt, err := read(cert)
	if err != nil {
		return fmt.Errorf("reading client certificate: %w", err)
	}
	k, err := read(key)
	if err != nil {
		return fmt.Errorf("reading client key: %w", err)
	}
	const name = "kpbench-lab"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: k}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}
