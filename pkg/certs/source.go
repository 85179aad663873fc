package certs

import (
	"context"
	"errors"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
)

// Source is the serving certificate of a webhook binary in any mode: hand it to webhook.Serve,
// run Run beside the server, and register Ready as a readiness check.
type Source interface {
	webhook.CertSource
	// Run keeps the certificate current until ctx ends.
	Run(ctx context.Context) error
	// Ready is nil once a certificate is served (a health.Check).
	Ready(ctx context.Context) error
}

// NewSource builds the Source for opts.Mode: files → the mounted pair, re-read every
// ReloadInterval (cert-manager renders the Certificate and injects the CA); self-signed and
// csr → a Manager. client may be nil in files mode; now nil means time.Now.
func NewSource(client kubernetes.Interface, namespace string, opts Options, now func() time.Time) (Source, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Mode != ModeFiles {
		return NewManager(client, namespace, opts, now)
	}
	fc, err := webhook.NewFileCert(opts.CertFile, opts.KeyFile, opts.ReloadInterval)
	if err != nil {
		return nil, err
	}
	return fileSource{fc}, nil
}

// fileSource adapts webhook.FileCert: loaded at construction, so always ready.
type fileSource struct{ *webhook.FileCert }

func (f fileSource) Run(ctx context.Context) error {
	f.Watch(ctx)
	return nil
}

func (f fileSource) Ready(context.Context) error {
	if _, err := f.GetCertificate(nil); err != nil {
		return errors.New("no serving certificate loaded from files")
	}
	return nil
}
