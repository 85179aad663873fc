package certs

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/rs/zerolog"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"
)

// Outcomes of a CertificateSigningRequest that are not a certificate.
var (
	ErrCSRDenied  = errors.New("certificate signing request denied")
	ErrCSRFailed  = errors.New("certificate signing request failed")
	ErrCSRTimeout = errors.New("certificate signing request not signed in time")
)

// RootCAConfigMap is the ConfigMap Kubernetes publishes the cluster CA in, in every namespace.
const RootCAConfigMap = "kube-root-ca.crt"

// csrUsages are what a serving certificate needs (and what EKS's app-serving signer requires).
func csrUsages() []certificatesv1.KeyUsage {
	return []certificatesv1.KeyUsage{
		certificatesv1.UsageDigitalSignature,
		certificatesv1.UsageKeyEncipherment,
		certificatesv1.UsageServerAuth,
	}
}

// minCSRExpiration is the smallest spec.expirationSeconds the API accepts.
const minCSRExpiration = 10 * time.Minute

// issueCSR has the cluster sign a new key through a CertificateSigningRequest: create it,
// approve it if RBAC lets us (else someone else must), wait up to CSRTimeout for the signer,
// and check that the certificate is ours, covers our names and verifies against the CA bundle.
func (m *Manager) issueCSR(ctx context.Context) (KeyPair, []*x509.Certificate, error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return KeyPair{}, nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: m.opts.ServiceName + "." + m.namespace + ".svc"}}
	for _, h := range m.hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return KeyPair{}, nil, fmt.Errorf("create certificate request: %w", err)
	}
	obj := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: m.opts.Secret + "-",
			Labels:       map[string]string{labelManagedBy: managedBy},
			Annotations:  map[string]string{"certs.orbit.aws/secret": m.namespace + "/" + m.opts.Secret},
		},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: m.opts.SignerName,
			Usages:     csrUsages(),
		},
	}
	if m.opts.Lifetime >= minCSRExpiration { // a wish; the signer may cut it
		secs := int32(min(m.opts.Lifetime/time.Second, 1<<31-1))
		obj.Spec.ExpirationSeconds = &secs
	}
	csrs := m.client.CertificatesV1().CertificateSigningRequests()
	created, err := csrs.Create(ctx, obj, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return KeyPair{}, nil, fmt.Errorf("create CertificateSigningRequest for signer %s: %w", m.opts.SignerName, err)
	}
	log := zerolog.Ctx(ctx).With().Str(keyCSR, created.Name).Str(keySignerName, m.opts.SignerName).Logger()
	ctx = log.WithContext(ctx)
	log.Info().Msg("certificate signing request created")

	keepCSR := false
	defer func() {
		if keepCSR {
			return
		}
		// Signed or abandoned, the request has served its purpose; a late approval of an
		// abandoned one must not produce a certificate for a key nobody keeps.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := csrs.Delete(dctx, created.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			log.Debug().Err(err).Msg("certificate signing request not deleted; the cluster's cleaner removes it")
		}
	}()

	waitCtx, cancel := context.WithTimeout(ctx, m.opts.CSRTimeout)
	defer cancel()
	if err := m.approveCSR(waitCtx, created); err != nil && waitCtx.Err() == nil {
		return KeyPair{}, nil, err
	}
	signed, err := m.waitSigned(ctx, waitCtx, created.Name)
	if errors.Is(err, ErrCSRDenied) {
		keepCSR = true // left for the operator to see why; the cluster's cleaner removes it
	}
	if err != nil {
		return KeyPair{}, nil, err
	}

	chain, err := parseCertificates(signed.Status.Certificate)
	if err != nil {
		return KeyPair{}, nil, fmt.Errorf("certificate of CSR %s: %w", created.Name, err)
	}
	leaf := chain[0]
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		return KeyPair{}, nil, fmt.Errorf("signer %s returned a certificate for another key in CSR %s", m.opts.SignerName, created.Name)
	}
	for _, h := range m.hosts {
		if leaf.VerifyHostname(h) != nil {
			return KeyPair{}, nil, fmt.Errorf("signer %s left %s out of the certificate of CSR %s", m.opts.SignerName, h, created.Name)
		}
	}
	anchors, source, err := m.csrBundle(ctx, chain)
	if err != nil {
		return KeyPair{}, nil, err
	}
	if _, err := verifyServing(chain, anchors, m.now()); err != nil {
		return KeyPair{}, nil, fmt.Errorf("certificate from signer %s does not verify against the CA bundle from %s (set --ca-bundle-file to the signer's CA): %w", m.opts.SignerName, source, err)
	}
	return KeyPair{CertPEM: encodeCertificates(chain), KeyPEM: keyPEM}, anchors, nil
}

// approveCSR approves our own request when RBAC allows it (approve on signers/<signerName>);
// when it does not, an administrator or an approving controller has to, and we wait.
func (m *Manager) approveCSR(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	log := zerolog.Ctx(ctx)
	csr = csr.DeepCopy()
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type:           certificatesv1.CertificateApproved,
		Status:         corev1.ConditionTrue,
		Reason:         "OrbitWebhookSelfApproved",
		Message:        "approved by the certificate manager of the webhook that requested it",
		LastUpdateTime: metav1.NewTime(m.now()),
	})
	_, err := m.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{FieldManager: FieldManager})
	switch {
	case err == nil:
		log.Info().Msg("certificate signing request approved")
	case apierrors.IsForbidden(err):
		log.Info().Err(err).Msg("not allowed to approve the certificate signing request; waiting for an approver")
	case apierrors.IsConflict(err):
		log.Info().Msg("certificate signing request changed before we approved it; waiting for its outcome")
	default:
		return fmt.Errorf("approve CSR %s: %w", csr.Name, err)
	}
	return nil
}

// waitSigned watches the request until it carries a certificate, is denied or fails, or
// waitCtx ends (ErrCSRTimeout, saying whether it was approved).
func (m *Manager) waitSigned(ctx, waitCtx context.Context, name string) (*certificatesv1.CertificateSigningRequest, error) {
	var last *certificatesv1.CertificateSigningRequest
	_, err := watchtools.UntilWithSync(waitCtx, csrLW(m.client, name), &certificatesv1.CertificateSigningRequest{}, nil,
		func(ev watch.Event) (bool, error) {
			if ev.Type == watch.Deleted {
				return false, fmt.Errorf("%w: CSR %s was deleted before it was signed", ErrCSRFailed, name)
			}
			csr, ok := ev.Object.(*certificatesv1.CertificateSigningRequest)
			if !ok {
				return false, nil
			}
			last = csr
			if c := csrCondition(csr, certificatesv1.CertificateDenied); c != nil {
				return false, fmt.Errorf("%w: CSR %s (signer %s): %s: %s", ErrCSRDenied, name, m.opts.SignerName, c.Reason, c.Message)
			}
			if c := csrCondition(csr, certificatesv1.CertificateFailed); c != nil {
				return false, fmt.Errorf("%w: CSR %s (signer %s): %s: %s", ErrCSRFailed, name, m.opts.SignerName, c.Reason, c.Message)
			}
			return len(csr.Status.Certificate) > 0, nil
		})
	if err == nil {
		return last, nil
	}
	if errors.Is(err, ErrCSRDenied) || errors.Is(err, ErrCSRFailed) {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("wait for CSR %s: %w", name, context.Cause(ctx))
	}
	if waitCtx.Err() != nil {
		state := "was not approved"
		if last != nil && csrCondition(last, certificatesv1.CertificateApproved) != nil {
			state = "was approved but not signed"
		}
		return nil, fmt.Errorf("%w: CSR %s %s within %s; is a signer for %s running?", ErrCSRTimeout, name, state, m.opts.CSRTimeout, m.opts.SignerName)
	}
	return nil, fmt.Errorf("wait for CSR %s: %w", name, err)
}

func csrCondition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequestCondition {
	for i, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return &csr.Status.Conditions[i]
		}
	}
	return nil
}

// csrBundle is the CA bundle for a certificate the cluster signed, and where it came from:
// --ca-bundle-file when set (it wins: the operator knows the signer); else the cluster CA
// from the kube-root-ca.crt ConfigMap (EKS signs app-serving certificates with it, and so do
// kube-controller-manager's signers by default), plus the CA certificates the signer returned
// after the leaf, if any.
func (m *Manager) csrBundle(ctx context.Context, chain []*x509.Certificate) ([]*x509.Certificate, string, error) {
	if f := m.opts.CABundleFile; f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("read --ca-bundle-file: %w", err)
		}
		certs, err := parseCertificates(data)
		if err != nil {
			return nil, "", fmt.Errorf("--ca-bundle-file %s: %w", f, err)
		}
		return certs, "--ca-bundle-file " + f, nil
	}
	var anchors []*x509.Certificate
	source := "ConfigMap " + m.namespace + "/" + RootCAConfigMap
	cm, err := m.client.CoreV1().ConfigMaps(m.namespace).Get(ctx, RootCAConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		source = "the signer's chain (no ConfigMap " + m.namespace + "/" + RootCAConfigMap + ")"
	case err != nil:
		return nil, "", fmt.Errorf("get ConfigMap %s/%s for the cluster CA: %w", m.namespace, RootCAConfigMap, err)
	default:
		certs, err := parseCertificates([]byte(cm.Data[CAKey]))
		if err != nil {
			return nil, "", fmt.Errorf("ConfigMap %s/%s key %s: %w", m.namespace, RootCAConfigMap, CAKey, err)
		}
		anchors = certs
	}
	for _, c := range chain[1:] {
		if c.IsCA {
			anchors = append(anchors, c)
		}
	}
	if len(anchors) == 0 {
		return nil, "", fmt.Errorf("no CA bundle for signer %s: no ConfigMap %s/%s and no CA in the signed chain; set --ca-bundle-file", m.opts.SignerName, m.namespace, RootCAConfigMap)
	}
	return dedupe(anchors), source, nil
}
