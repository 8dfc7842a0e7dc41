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
	"os"
	"path/filepath"
	"testing"
	"time"

	keyport "github.com/keyport/keyport/clients/go"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The TLS options against real keyport servers started with [server]
// tls_cert_file, tls_key_file and (for mutual TLS) tls_client_ca_file. The
// certificates come from crypto/x509 rather than the openssl command, so the
// Go tests need nothing but Go: a throwaway CA, a server certificate for
// "keyport.test", a client certificate from the same CA, and a stranger's
// from another CA.

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

func TestTLS(t *testing.T) {
	ca := newTestCA(t)
	serverCert, serverKey := ca.issue(t, 2, x509.ExtKeyUsageServerAuth, "keyport.test")
	clientCert, clientKey := ca.issue(t, 3, x509.ExtKeyUsageClientAuth, "client.test")
	stranger, strangerKey := newTestCA(t).issue(t, 4, x509.ExtKeyUsageClientAuth, "stranger.test")
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", ca.pem)
	serverEnv := []string{
		"KEYPORT_SERVER__TLS_CERT_FILE=" + writeFile(t, dir, "server.pem", serverCert),
		"KEYPORT_SERVER__TLS_KEY_FILE=" + writeFile(t, dir, "server-key.pem", serverKey),
	}
	clientCertFile := writeFile(t, dir, "client.pem", clientCert)
	clientKeyFile := writeFile(t, dir, "client-key.pem", clientKey)
	strangerFile := writeFile(t, dir, "stranger.pem", stranger)
	strangerKeyFile := writeFile(t, dir, "stranger-key.pem", strangerKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	// Keyport serving TLS only, and Keyport requiring client certificates
	// from ca (mutual TLS).
	tlsAddr := startTestServer(t, serverEnv...)
	mtlsAddr := startTestServer(t, append(serverEnv, "KEYPORT_SERVER__TLS_CLIENT_CA_FILE="+caFile)...)

	// call returns the code and reason of GetSession with a bogus token:
	// Unauthenticated/UNAUTHENTICATED when Keyport answered.
	call := func(t *testing.T, addr string, opts ...keyport.Option) (codes.Code, string) {
		t.Helper()
		c, err := keyport.Dial(addr, append(opts, keyport.WithTimeout(5*time.Second))...)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		_, err = c.Sessions.GetSession(t.Context(), &keyportv1.GetSessionRequest{Token: "kp_x.y"})
		return status.Code(err), keyport.ErrorReason(err)
	}

	tests := []struct {
		name string
		addr string
		opts []keyport.Option
		want codes.Code
	}{
		{"TLS with the CA file", tlsAddr, []keyport.Option{
			keyport.WithCAFile(caFile), keyport.WithServerName("keyport.test"),
		}, codes.Unauthenticated},
		// As in the README and ExampleDial_mutualTLS.
		{"mTLS with CA file and client cert files", mtlsAddr, []keyport.Option{
			keyport.WithCAFile(caFile), keyport.WithClientCertFiles(clientCertFile, clientKeyFile), keyport.WithServerName("keyport.test"),
		}, codes.Unauthenticated},
		{"mTLS with root pool and client cert", mtlsAddr, []keyport.Option{
			keyport.WithRootCAs(pool), keyport.WithClientCert(mustPair(t, clientCert, clientKey)), keyport.WithServerName("keyport.test"),
		}, codes.Unauthenticated},
		{"mTLS with TLS config plus client cert", mtlsAddr, []keyport.Option{
			keyport.WithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "keyport.test"}), keyport.WithClientCertFiles(clientCertFile, clientKeyFile),
		}, codes.Unauthenticated},
		{"mTLS without a client cert", mtlsAddr, []keyport.Option{
			keyport.WithCAFile(caFile), keyport.WithServerName("keyport.test"),
		}, codes.Unavailable},
		{"mTLS with a client cert from another CA", mtlsAddr, []keyport.Option{
			keyport.WithCAFile(caFile), keyport.WithClientCertFiles(strangerFile, strangerKeyFile), keyport.WithServerName("keyport.test"),
		}, codes.Unavailable},
		{"system roots do not trust the test CA", tlsAddr, []keyport.Option{
			keyport.WithServerName("keyport.test"),
		}, codes.Unavailable},
		{"wrong server name", tlsAddr, []keyport.Option{
			keyport.WithCAFile(caFile), keyport.WithServerName("other.test"),
		}, codes.Unavailable},
		{"plaintext to a TLS port", tlsAddr, []keyport.Option{keyport.WithInsecure()}, codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := call(t, tc.addr, tc.opts...)
			if code != tc.want {
				t.Errorf("GetSession over %s: %v (%q), want %v", tc.name, code, reason, tc.want)
			}
			wantReason := ""
			if tc.want == codes.Unauthenticated {
				wantReason = keyport.ReasonUnauthenticated
			}
			if reason != wantReason {
				t.Errorf("GetSession over %s: reason %q, want %q", tc.name, reason, wantReason)
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
