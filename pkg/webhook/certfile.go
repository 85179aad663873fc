package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// StaticCert serves one certificate; Set swaps it for the next handshake.
type StaticCert struct {
	cert atomic.Pointer[tls.Certificate]
}

// NewStaticCert returns a source serving cert.
func NewStaticCert(cert *tls.Certificate) *StaticCert {
	s := &StaticCert{}
	s.cert.Store(cert)
	return s
}

// Set replaces the certificate served from the next handshake on.
func (s *StaticCert) Set(cert *tls.Certificate) { s.cert.Store(cert) }

// GetCertificate implements CertSource.
func (s *StaticCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cert.Load()
	if c == nil {
		return nil, errors.New("no serving certificate yet")
	}
	return c, nil
}

// FileCert serves a certificate and key from files (cert-manager or a mounted Secret) and
// re-reads them when they change. A half-written pair (a Secret update is not atomic for the
// reader) fails to load and the previous certificate stays in use until the next poll.
type FileCert struct {
	certFile, keyFile string
	interval          time.Duration

	mu       sync.Mutex
	lastCert []byte
	lastKey  []byte
	current  StaticCert
}

// NewFileCert loads the pair once; an unreadable pair at start is an error.
func NewFileCert(certFile, keyFile string, interval time.Duration) (*FileCert, error) {
	f := &FileCert{certFile: certFile, keyFile: keyFile, interval: interval}
	if _, err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// GetCertificate implements CertSource.
func (f *FileCert) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.current.GetCertificate(h)
}

// Watch re-reads the files every interval until ctx ends.
func (f *FileCert) Watch(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := f.reload()
			switch {
			case err != nil:
				zerolog.Ctx(ctx).Warn().Err(err).Msg("serving certificate files unreadable; keeping the previous certificate")
			case changed:
				zerolog.Ctx(ctx).Info().Str("certFile", f.certFile).Msg("serving certificate reloaded")
			}
		}
	}
}

func (f *FileCert) reload() (bool, error) {
	certPEM, err := os.ReadFile(f.certFile)
	if err != nil {
		return false, fmt.Errorf("read --tls-cert-file: %w", err)
	}
	keyPEM, err := os.ReadFile(f.keyFile)
	if err != nil {
		return false, fmt.Errorf("read --tls-key-file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if bytes.Equal(certPEM, f.lastCert) && bytes.Equal(keyPEM, f.lastKey) {
		return false, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("load key pair %s, %s: %w", f.certFile, f.keyFile, err)
	}
	f.current.Set(&pair)
	f.lastCert, f.lastKey = certPEM, keyPEM
	return true, nil
}
