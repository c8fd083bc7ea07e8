package main

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// certReloader holds the server's TLS certificate and loads it again from
// its files on demand (SIGHUP), so that a renewed certificate is served
// to new connections without a restart. Connections already open keep
// the certificate they were given.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// newCertReloader makes tc serve the reloader's certificate, starting
// with the one tc holds (loaded from certFile and keyFile).
func newCertReloader(tc *tls.Config, certFile, keyFile string) *certReloader {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if len(tc.Certificates) > 0 {
		c := tc.Certificates[0]
		r.cert.Store(&c)
	}
	tc.Certificates = nil
	tc.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.cert.Load(), nil }
	return r
}

// reload loads the files again; on error the certificate in use stays.
func (r *certReloader) reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("loading TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&c)
	return nil
}
