package keyport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Option configures [Dial].
type Option func(*options) error

// options is what the Options of one Dial call add up to.
type options struct {
	insecure    bool
	tlsConfig   *tls.Config // base TLS config from WithTLSConfig, or nil
	rootCAs     *x509.CertPool
	clientCerts []tls.Certificate
	serverName  string
	usedTLSOpt  bool // some TLS-only option was given
	timeout     time.Duration
	userAgent   string
	extra       []grpc.DialOption
}

func defaultOptions() *options {
	return &options{timeout: DefaultTimeout, userAgent: "keyport-go/" + Version}
}

// WithInsecure makes the client talk plaintext HTTP/2, without TLS: for a
// server on localhost or behind a trusted proxy only. It cannot be combined
// with the TLS options.
func WithInsecure() Option {
	return func(o *options) error {
		o.insecure = true
		return nil
	}
}

// WithTLSConfig sets the TLS configuration to start from. [WithRootCAs],
// [WithCAFile], [WithClientCert], [WithClientCertFiles] and [WithServerName]
// are applied on top of a copy of it. Without it (and without
// [WithInsecure]) the client uses TLS 1.2+ with the system roots.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil {
			return errors.New("WithTLSConfig: nil *tls.Config")
		}
		o.tlsConfig = cfg.Clone()
		o.usedTLSOpt = true
		return nil
	}
}

// WithRootCAs makes the client trust exactly the certificate authorities in
// pool (instead of the system roots) when verifying the server.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(o *options) error {
		if pool == nil {
			return errors.New("WithRootCAs: nil *x509.CertPool")
		}
		o.rootCAs = pool
		o.usedTLSOpt = true
		return nil
	}
}

// WithCAFile makes the client trust exactly the PEM-encoded certificate
// authorities in the file at path (instead of the system roots) when
// verifying the server: the usual setup for a private CA.
func WithCAFile(path string) Option {
	return func(o *options) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("WithCAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("WithCAFile: no PEM certificate found in %s", path)
		}
		o.rootCAs = pool
		o.usedTLSOpt = true
		return nil
	}
}

// WithClientCert presents cert to the server, for servers that require
// mutual TLS (a client CA in Keyport's TLS configuration).
func WithClientCert(cert tls.Certificate) Option {
	return func(o *options) error {
		o.clientCerts = append(o.clientCerts, cert)
		o.usedTLSOpt = true
		return nil
	}
}

// WithClientCertFiles loads a PEM certificate (chain) and its private key
// and presents them to the server, for mutual TLS.
func WithClientCertFiles(certFile, keyFile string) Option {
	return func(o *options) error {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("WithClientCertFiles: %w", err)
		}
		o.clientCerts = append(o.clientCerts, cert)
		o.usedTLSOpt = true
		return nil
	}
}

// WithServerName sets the name the server's certificate is checked against,
// when it differs from the host in the dial address (for example when
// dialing an IP address).
func WithServerName(name string) Option {
	return func(o *options) error {
		o.serverName = name
		o.usedTLSOpt = true
		return nil
	}
}

// WithTimeout sets the deadline of every unary call whose context has none
// (default [DefaultTimeout], 2 s). A deadline on the call's context always wins.
// Zero or a negative duration turns the default deadline off. Streaming
// calls never get a default deadline.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		o.timeout = d
		return nil
	}
}

// WithUserAgent sets the user agent the client sends to Keyport (prefixed
// to grpc-go's own). It identifies the calling service in Keyport's logs;
// it is not the end user's user agent, which travels in the
// x-keyport-user-agent metadata entry.
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		o.userAgent = ua
		return nil
	}
}

// WithDialOptions passes extra options to grpc.NewClient, for example
// interceptors for tracing or metrics. They are applied after the ones
// derived from the other options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) error {
		o.extra = append(o.extra, opts...)
		return nil
	}
}

// transportCredentials builds the connection's credentials from o.
func (o *options) transportCredentials() (credentials.TransportCredentials, error) {
	if o.insecure {
		if o.usedTLSOpt {
			return nil, errors.New("WithInsecure cannot be combined with TLS options")
		}
		return insecure.NewCredentials(), nil
	}
	cfg := o.tlsConfig
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if o.rootCAs != nil {
		cfg.RootCAs = o.rootCAs
	}
	if len(o.clientCerts) > 0 {
		cfg.Certificates = append(cfg.Certificates, o.clientCerts...)
	}
	if o.serverName != "" {
		cfg.ServerName = o.serverName
	}
	return credentials.NewTLS(cfg), nil
}

// dialOptions turns o into grpc.NewClient options.
func (o *options) dialOptions() ([]grpc.DialOption, error) {
	creds, err := o.transportCredentials()
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(errorInterceptor),
		grpc.WithChainStreamInterceptor(streamErrorInterceptor),
	}
	if o.userAgent != "" {
		opts = append(opts, grpc.WithUserAgent(o.userAgent))
	}
	if o.timeout > 0 {
		opts = append(opts, grpc.WithChainUnaryInterceptor(timeoutInterceptor(o.timeout)))
	}
	return append(opts, o.extra...), nil
}
