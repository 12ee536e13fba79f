package testnet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// EtcdTLS are the PEM files of an etcd served over TLS, all made by the
// test: a CA, the server's certificate and key (for its IP address) and
// a client certificate and key, both signed by the CA.
type EtcdTLS struct {
	CAFile                string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	// OtherCA is a CA that signed nothing here, for a client that must be
	// refused; OtherCert and OtherKey are a client certificate it signed.
	OtherCA, OtherCert, OtherKey string
}

// NewEtcdTLS makes the certificates of a TLS etcd listening on ip, in a
// directory of the test's.
func NewEtcdTLS(t testing.TB, ip string) *EtcdTLS {
	t.Helper()
	RequireDocAddr(t, ip)
	dir := t.TempDir()
	f := &EtcdTLS{}
	ca, caKey := makeCA(t, dir, "ca", &f.CAFile)
	f.ServerCert, f.ServerKey = makeCert(t, dir, "server", ca, caKey, net.ParseIP(ip), x509.ExtKeyUsageServerAuth)
	f.ClientCert, f.ClientKey = makeCert(t, dir, "client", ca, caKey, nil, x509.ExtKeyUsageClientAuth)
	other, otherKey := makeCA(t, dir, "other-ca", &f.OtherCA)
	f.OtherCert, f.OtherKey = makeCert(t, dir, "other-client", other, otherKey, nil, x509.ExtKeyUsageClientAuth)
	return f
}

// ClientConfig is the TLS configuration of a client holding the client
// certificate.
func (f *EtcdTLS) ClientConfig(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	data, err := os.ReadFile(f.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(data) {
		t.Fatalf("testnet: CA file %s: %v", f.CAFile, err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func nextSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err) // the system's random source failed
	}
	return n
}

func makeCA(t testing.TB, dir, name string, file *string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "vxland test " + name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	*file = writePEM(t, dir, name+".pem", "CERTIFICATE", der)
	return cert, key
}

func makeCert(t testing.TB, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, ip net.IP, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "vxland test " + name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", kd)
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
