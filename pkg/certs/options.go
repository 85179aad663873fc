package certs

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// Modes of --cert-mode (SPEC §4, §6).
const (
	ModeFiles      = "files"       // read --tls-cert-file/--tls-key-file (cert-manager, mounted Secret)
	ModeSelfSigned = "self-signed" // own CA in a Secret; works on any cluster
	ModeCSR        = "csr"         // cluster CertificateSigningRequest API
)

// Options are the certificate flags of a webhook binary.
type Options struct {
	Mode          string
	CertFile      string
	KeyFile       string
	Secret        string
	ServiceName   string
	WebhookConfig string
	SignerName    string
	// Lifetime of issued serving certificates; renewal starts at RenewFraction of it.
	Lifetime      time.Duration
	CALifetime    time.Duration
	RenewFraction float64
	// ReloadInterval is how often files mode re-reads the pair.
	ReloadInterval time.Duration
	// CSRTimeout bounds the wait for a CSR to be signed.
	CSRTimeout time.Duration
}

// DefaultOptions: self-signed, a year's serving certificate renewed at 2/3 of its life.
func DefaultOptions() Options {
	return Options{
		Mode:           ModeSelfSigned,
		SignerName:     "beta.eks.amazonaws.com/app-serving",
		Lifetime:       365 * 24 * time.Hour,
		CALifetime:     10 * 365 * 24 * time.Hour,
		RenewFraction:  2.0 / 3.0,
		ReloadInterval: 10 * time.Second,
		CSRTimeout:     2 * time.Minute,
	}
}

// BindFlags binds the certificate flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Mode, "cert-mode", o.Mode, "where the serving certificate comes from: files, self-signed or csr")
	fs.StringVar(&o.CertFile, "tls-cert-file", o.CertFile, "serving certificate (PEM) for --cert-mode=files; re-read when it changes")
	fs.StringVar(&o.KeyFile, "tls-key-file", o.KeyFile, "serving key (PEM) for --cert-mode=files; re-read when it changes")
	fs.StringVar(&o.Secret, "cert-secret", o.Secret, "kubernetes.io/tls Secret holding the serving certificate (self-signed and csr modes)")
	fs.StringVar(&o.ServiceName, "service-name", o.ServiceName, "the Service the certificate is for (self-signed and csr modes)")
	fs.StringVar(&o.WebhookConfig, "webhook-config", o.WebhookConfig, "MutatingWebhookConfiguration whose caBundle is kept current (self-signed and csr modes)")
	fs.StringVar(&o.SignerName, "csr-signer-name", o.SignerName, "signerName of the CertificateSigningRequest in csr mode")
	fs.DurationVar(&o.Lifetime, "cert-lifetime", o.Lifetime, "lifetime of an issued serving certificate")
	fs.DurationVar(&o.CALifetime, "ca-lifetime", o.CALifetime, "lifetime of the self-signed CA")
	fs.Float64Var(&o.RenewFraction, "cert-renew-fraction", o.RenewFraction, "renew when this fraction of the lifetime has passed")
	fs.DurationVar(&o.ReloadInterval, "cert-reload-interval", o.ReloadInterval, "how often files mode re-reads the certificate files")
	fs.DurationVar(&o.CSRTimeout, "csr-timeout", o.CSRTimeout, "how long csr mode waits for the certificate to be signed")
}

// Validate checks the flags of the chosen mode.
func (o Options) Validate() error {
	switch o.Mode {
	case ModeFiles:
		if o.CertFile == "" || o.KeyFile == "" {
			return errors.New("--cert-mode=files: --tls-cert-file and --tls-key-file are required")
		}
	case ModeSelfSigned, ModeCSR:
		if o.Secret == "" {
			return fmt.Errorf("--cert-mode=%s: --cert-secret is required", o.Mode)
		}
		if o.ServiceName == "" {
			return fmt.Errorf("--cert-mode=%s: --service-name is required", o.Mode)
		}
		if o.Mode == ModeCSR && o.SignerName == "" {
			return errors.New("--cert-mode=csr: --csr-signer-name is required")
		}
	default:
		return fmt.Errorf("--cert-mode: unknown mode %q (want files, self-signed or csr)", o.Mode)
	}
	if o.Lifetime < time.Second {
		return fmt.Errorf("--cert-lifetime: %s is too short", o.Lifetime)
	}
	if o.RenewFraction <= 0 || o.RenewFraction >= 1 {
		return fmt.Errorf("--cert-renew-fraction: %v is not between 0 and 1", o.RenewFraction)
	}
	return nil
}
