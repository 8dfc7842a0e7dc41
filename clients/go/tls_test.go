package keyport_test

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

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// The keyport server has no TLS settings yet, so the TLS options are
// checked against an in-process gRPC server that requires mutual TLS and
// implements nothing: a call that gets through the handshake comes back
// Unimplemented, one that does not comes back Unavailable.

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keyport test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for a leaf signed by ca.
func (ca *testCA) issue(t *testing.T, serial int64, usage x509.ExtKeyUsage, dnsName string) (certPEM, keyPEM []byte) {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	serverCert, serverKey := ca.issue(t, 2, x509.ExtKeyUsageServerAuth, "keyport.test")
	clientCert, clientKey := ca.issue(t, 3, x509.ExtKeyUsageClientAuth, "client.test")
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", ca.pem)
	clientCertFile := writeFile(t, dir, "client.pem", clientCert)
	clientKeyFile := writeFile(t, dir, "client-key.pem", clientKey)

	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})))
	keyportv1.RegisterSessionServiceServer(srv, keyportv1.UnimplementedSessionServiceServer{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	call := func(t *testing.T, opts ...keyport.Option) codes.Code {
		t.Helper()
		c, err := keyport.Dial(addr, append(opts, keyport.WithTimeout(5*time.Second))...)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		_, err = c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_x.y"})
		return status.Code(err)
	}

	tests := []struct {
		name string
		opts []keyport.Option
		want codes.Code
	}{
		{"CA file and client cert files", []keyport.Option{
			keyport.WithCAFile(caFile), keyport.WithClientCertFiles(clientCertFile, clientKeyFile), keyport.WithServerName("keyport.test"),
		}, codes.Unimplemented},
		{"root pool and client cert", []keyport.Option{
			keyport.WithRootCAs(pool), keyport.WithClientCert(mustPair(t, clientCert, clientKey)), keyport.WithServerName("keyport.test"),
		}, codes.Unimplemented},
		{"TLS config plus client cert", []keyport.Option{
			keyport.WithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "keyport.test"}), keyport.WithClientCertFiles(clientCertFile, clientKeyFile),
		}, codes.Unimplemented},
		{"no client cert", []keyport.Option{
			keyport.WithCAFile(caFile), keyport.WithServerName("keyport.test"),
		}, codes.Unavailable},
		{"system roots do not trust the test CA", []keyport.Option{
			keyport.WithClientCertFiles(clientCertFile, clientKeyFile), keyport.WithServerName("keyport.test"),
		}, codes.Unavailable},
		{"wrong server name", []keyport.Option{
			keyport.WithCAFile(caFile), keyport.WithClientCertFiles(clientCertFile, clientKeyFile), keyport.WithServerName("other.test"),
		}, codes.Unavailable},
		{"plaintext", []keyport.Option{keyport.WithInsecure()}, codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := call(t, tc.opts...); got != tc.want {
				t.Errorf("GetSession over %s: %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

func mustPair(t *testing.T, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}
