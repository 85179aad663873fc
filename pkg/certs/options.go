package certs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// CABundleFile is the PEM bundle that verifies certificates of the CSR signer (csr mode).
	// Empty: the cluster CA from the kube-root-ca.crt ConfigMap, plus any CA certificates the
	// signer returns with the certificate.
	CABundleFile string
	// ExtraHosts are DNS names or IPs the serving certificate covers besides the Service's
	// names (e.g. a URL-based webhook on a node address; tests use 127.0.0.1).
	ExtraHosts []string
	// CheckInterval is how often the Secrets and the webhook configuration are re-read besides
	// the watch events that normally trigger it.
	CheckInterval time.Duration
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
		CheckInterval:  time.Minute,
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
	fs.StringVar(&o.CABundleFile, "ca-bundle-file", o.CABundleFile, "PEM CA bundle that verifies the CSR signer's certificates in csr mode (default: the kube-root-ca.crt ConfigMap plus any CA the signer returns)")
	fs.StringSliceVar(&o.ExtraHosts, "cert-extra-hosts", o.ExtraHosts, "extra DNS names or IPs for the serving certificate besides the Service's names")
	fs.DurationVar(&o.CheckInterval, "cert-check-interval", o.CheckInterval, "how often the certificate Secrets and the webhook configuration's caBundle are re-checked besides watch events")
}

// Validate checks the flags of the chosen mode.
func (o Options) Validate() error {
	switch o.Mode {
	case ModeFiles:
		if o.CertFile == "" || o.KeyFile == "" {
			return errors.New("--cert-mode=files: --tls-cert-file and --tls-key-file are required")
		}
		if o.ReloadInterval <= 0 {
			return fmt.Errorf("--cert-reload-interval: %s must be positive", o.ReloadInterval)
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
		if o.Mode == ModeCSR && o.CSRTimeout <= 0 {
			return fmt.Errorf("--csr-timeout: %s must be positive", o.CSRTimeout)
		}
		// A CA that does not outlive two leaves would leave no room to rotate it before the
		// leaves it signs have to be cut short (see planCA).
		if o.Mode == ModeSelfSigned && o.CALifetime < 2*o.Lifetime {
			return fmt.Errorf("--ca-lifetime: %s must be at least twice --cert-lifetime (%s)", o.CALifetime, o.Lifetime)
		}
		if o.CheckInterval <= 0 {
			return fmt.Errorf("--cert-check-interval: %s must be positive", o.CheckInterval)
		}
		for _, h := range o.ExtraHosts {
			if strings.TrimSpace(h) == "" {
				return errors.New("--cert-extra-hosts: empty host name")
			}
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

// Hosts are the names the serving certificate covers: the Service's names in namespace and
// ExtraHosts.
func (o Options) Hosts(namespace string) []string {
	hosts := ServingNames(o.ServiceName, namespace)
	for _, h := range o.ExtraHosts {
		if h = strings.TrimSpace(h); h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}
