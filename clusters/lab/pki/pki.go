// Package pki makes the credentials of a kpbench lab, and of the loopback
// apiserver tests start (clusters/lab/apitest): a CA, the apiserver's
// serving certificate, client certificates for the admin (system:masters)
// and kube-proxy (system:kube-proxy, bound to system:node-proxier by the
// apiserver's default RBAC), the service-account signing key, and
// kubeconfigs that embed them.
package pki

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

// Dir is a directory of credentials, generated once per lab (or test
// apiserver).
type Dir string

// Path is the path of one of the files below.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// Files of a pki directory.
const (
	CACert         = "ca.crt"
	CAKey          = "ca.key"
	APIServerCert  = "apiserver.crt"
	APIServerKey   = "apiserver.key"
	AdminCert      = "admin.crt"
	AdminKey       = "admin.key"
	KubeProxyCert  = "kube-proxy.crt"
	KubeProxyKey   = "kube-proxy.key"
	ServiceAcctKey = "sa.key"
	ServiceAcctPub = "sa.pub"
)

// AdminUser and KubeProxyUser are the client certificates' user names.
const (
	AdminUser     = "kpbench-admin"
	KubeProxyUser = "system:kube-proxy"
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

// Generate writes a fresh set of credentials into d. The CA is named for
// name; the serving certificate is valid for localhost, the kubernetes
// Service's DNS names, 127.0.0.1 and ips (the apiserver's and the
// kubernetes Service's addresses).
func (d Dir) Generate(name string, ips ...net.IP) error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("creating pki directory: %w", err)
	}
	ca, err := sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "kpbench-lab-" + name + "-ca"},
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
		IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...),
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
	admin, err := client(AdminUser, "system:masters")
	if err != nil {
		return err
	}
	proxy, err := client(KubeProxyUser)
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
		CACert: ca.certPEM, CAKey: ca.keyPEM,
		APIServerCert: serving.certPEM, APIServerKey: serving.keyPEM,
		AdminCert: admin.certPEM, AdminKey: admin.keyPEM,
		KubeProxyCert: proxy.certPEM, KubeProxyKey: proxy.keyPEM,
		ServiceAcctKey: saPEM,
		ServiceAcctPub: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
	}
	for name, data := range files {
		if err := os.WriteFile(d.Path(name), data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// WriteKubeconfig writes a kubeconfig for server authenticating as user
// with the client certificate cert/key of d, embedding the credentials so
// the file stands alone. Its cluster and context are named context.
func (d Dir) WriteKubeconfig(path, server, context, user, cert, key string) error {
	read := func(name string) ([]byte, error) { return os.ReadFile(d.Path(name)) }
	ca, err := read(CACert)
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
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[context] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: k}
	cfg.Contexts[context] = &clientcmdapi.Context{Cluster: context, AuthInfo: user}
	cfg.CurrentContext = context
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}
