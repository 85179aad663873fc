package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Keys and markers of the Secrets this package writes.
const (
	// CAKey is the trust bundle in a kubernetes.io/tls Secret (cert-manager's convention).
	CAKey = "ca.crt"
	// caNextCertKey and caNextKeyKey hold a CA that is published in the bundle but does not
	// sign yet (CA rotation, see planCA).
	caNextCertKey = "next.crt"
	caNextKeyKey  = "next.key"
	// annNextStagedAt records when the next CA was put into the bundle (RFC 3339).
	annNextStagedAt = "certs.orbit.aws/next-ca-staged-at"
	// annIssuer records where a serving certificate came from (see issuerID), so a change of
	// --cert-mode or --csr-signer-name replaces it at once instead of at its renewal.
	annIssuer = "certs.orbit.aws/issuer"
	// labelManagedBy marks the Secrets and CSRs this package owns.
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "orbit-certs"
)

// RenewalTime is when a certificate valid from notBefore to notAfter should be replaced: when
// only (1-fraction) of its lifetime is left. lifetime is the requested lifetime; the span on
// the certificate is longer when the issuer back-dated notBefore for clock skew (we and
// kube-controller-manager do, by minutes, which would make a lifetime of seconds look due at
// once) and shorter when the issuer cut it (a CA's end, a signer's maximum); the shorter wins.
func RenewalTime(notBefore, notAfter time.Time, lifetime time.Duration, fraction float64) time.Time {
	span := notAfter.Sub(notBefore)
	if lifetime <= 0 || lifetime > span {
		lifetime = span
	}
	return notAfter.Add(-time.Duration((1 - fraction) * float64(lifetime)))
}

// servingCert is a decoded, checked serving Secret.
type servingCert struct {
	pair   KeyPair
	tls    *tls.Certificate
	leaf   *x509.Certificate
	bundle []byte // ca.crt as stored
	issuer string // annIssuer
	// anchors are the certificates of bundle that verify leaf; only these must stay in the
	// webhook configuration while leaf is served.
	anchors []*x509.Certificate
}

// decodeServing checks everything the webhook server and the API server will rely on: the
// type, a key that matches the certificate, and a leaf that ca.crt verifies for serving at now.
func decodeServing(s *corev1.Secret, now time.Time) (*servingCert, error) {
	if s.Type != corev1.SecretTypeTLS {
		return nil, fmt.Errorf("type is %q, want %q", s.Type, corev1.SecretTypeTLS)
	}
	certPEM, keyPEM, bundle := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey], s.Data[CAKey]
	for key, v := range map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, CAKey: bundle} {
		if len(v) == 0 {
			return nil, fmt.Errorf("%s is missing or empty", key)
		}
	}
	pair := KeyPair{CertPEM: certPEM, KeyPEM: keyPEM}
	tc, err := pair.TLSCertificate()
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", corev1.TLSCertKey, err)
	}
	roots, err := parseCertificates(bundle)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKey, err)
	}
	anchors, err := verifyServing(chain, roots, now)
	if err != nil {
		return nil, fmt.Errorf("%s does not verify %s: %w", CAKey, corev1.TLSCertKey, err)
	}
	tc.Leaf = chain[0]
	return &servingCert{pair: pair, tls: tc, leaf: chain[0], bundle: bundle, issuer: s.Annotations[annIssuer], anchors: anchors}, nil
}

// verifyServing verifies chain[0] for server auth with chain[1:] as intermediates and returns
// the roots it chains to.
func verifyServing(chain, roots []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	rootPool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range roots {
		rootPool.AddCert(c)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	var anchors []*x509.Certificate
	for _, ch := range chains {
		anchors = append(anchors, ch[len(ch)-1])
	}
	return dedupe(anchors), nil
}

// issuerID names where o gets serving certificates from.
func issuerID(o Options) string {
	if o.Mode == ModeCSR {
		return ModeCSR + "/" + o.SignerName
	}
	return o.Mode
}

// servingData is the content of a serving Secret.
func servingData(pair KeyPair, bundle []byte) map[string][]byte {
	return map[string][]byte{
		corev1.TLSCertKey:       pair.CertPEM,
		corev1.TLSPrivateKeyKey: pair.KeyPEM,
		CAKey:                   bundle,
	}
}

// caState is a decoded CA Secret: the CA that signs, the trust bundle the webhook
// configuration carries, and during a rotation the next CA, already in the bundle.
type caState struct {
	signing     KeyPair
	signingCert *x509.Certificate
	next        *KeyPair
	nextCert    *x509.Certificate
	stagedAt    time.Time
	bundle      []*x509.Certificate
}

// decodeCA checks a CA Secret. An incomplete next CA is dropped (it is staged again), not an
// error: only the signing CA is needed to keep serving.
func decodeCA(s *corev1.Secret) (*caState, error) {
	if s.Type != corev1.SecretTypeTLS {
		return nil, fmt.Errorf("type is %q, want %q", s.Type, corev1.SecretTypeTLS)
	}
	signing := KeyPair{CertPEM: s.Data[corev1.TLSCertKey], KeyPEM: s.Data[corev1.TLSPrivateKeyKey]}
	signingCert, err := checkCA(signing)
	if err != nil {
		return nil, fmt.Errorf("signing CA: %w", err)
	}
	bundle, err := parseCertificates(s.Data[CAKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKey, err)
	}
	st := &caState{signing: signing, signingCert: signingCert, bundle: bundle}
	if !contains(bundle, signingCert) {
		return nil, fmt.Errorf("%s does not hold the signing CA", CAKey)
	}
	next := KeyPair{CertPEM: s.Data[caNextCertKey], KeyPEM: s.Data[caNextKeyKey]}
	if len(next.CertPEM) > 0 {
		nextCert, err := checkCA(next)
		stagedAt, terr := time.Parse(time.RFC3339, s.Annotations[annNextStagedAt])
		if err == nil && terr == nil && contains(bundle, nextCert) {
			st.next, st.nextCert, st.stagedAt = &next, nextCert, stagedAt
		}
	}
	return st, nil
}

// checkCA parses a CA pair and checks that it can sign certificates.
func checkCA(kp KeyPair) (*x509.Certificate, error) {
	if _, err := kp.TLSCertificate(); err != nil {
		return nil, err
	}
	c, err := kp.Certificate()
	if err != nil {
		return nil, err
	}
	if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("certificate is not a CA")
	}
	return c, nil
}

// data and annotations of the CA Secret for st.
func (st *caState) secretContent() (map[string][]byte, map[string]string) {
	data := map[string][]byte{
		corev1.TLSCertKey:       st.signing.CertPEM,
		corev1.TLSPrivateKeyKey: st.signing.KeyPEM,
		CAKey:                   encodeCertificates(st.bundle),
	}
	ann := map[string]string{}
	if st.next != nil {
		data[caNextCertKey], data[caNextKeyKey] = st.next.CertPEM, st.next.KeyPEM
		ann[annNextStagedAt] = st.stagedAt.UTC().Format(time.RFC3339Nano)
	}
	return data, ann
}

// caAction is what planCA decides.
type caAction int

const (
	caKeep    caAction = iota
	caCreate           // no usable CA: make a new one (nothing served from the old one can be kept)
	caStage            // put a next CA into the bundle, still signing with the current one
	caPromote          // sign with the next CA; the old one stays in the bundle
)

func (a caAction) String() string {
	return [...]string{"keep", "create", "stage", "promote"}[a]
}

// planCA decides the CA's next step and, for caKeep, when to look again. Rotation is in two
// steps so the webhook configuration trusts a CA before anything it signed is served: at
// RenewFraction of the CA's lifetime a next CA is staged into the bundle (every replica
// injects the bundle as soon as it sees the Secret change); only after promotionDelay does
// it become the signing CA, and leaves are re-issued from it.
func planCA(st *caState, o Options, now time.Time) (caAction, time.Time) {
	if st == nil {
		return caCreate, time.Time{}
	}
	if st.next == nil {
		if !now.Before(st.signingCert.NotAfter) {
			return caCreate, time.Time{}
		}
		stageAt := RenewalTime(st.signingCert.NotBefore, st.signingCert.NotAfter, o.CALifetime, o.RenewFraction)
		if !now.Before(stageAt) {
			return caStage, time.Time{}
		}
		return caKeep, stageAt
	}
	promoteAt := st.stagedAt.Add(promotionDelay(o))
	if !now.Before(promoteAt) || !now.Before(st.signingCert.NotAfter) {
		return caPromote, time.Time{}
	}
	return caKeep, promoteAt
}

// promotionDelay is how long a staged CA is trusted before it signs: long enough for every
// replica to see the CA Secret change and for the API server to pick up the webhook
// configuration (both are watch-driven, well under a second), short against the old CA's
// remaining life ((1-RenewFraction) of CALifetime).
func promotionDelay(o Options) time.Duration {
	d := time.Duration((1 - o.RenewFraction) * float64(o.CALifetime) / 4)
	return min(d, time.Minute)
}

// stage returns st with next in the bundle.
func (st *caState) stage(next KeyPair, now time.Time) (*caState, error) {
	nextCert, err := next.Certificate()
	if err != nil {
		return nil, err
	}
	out := *st
	out.next, out.nextCert, out.stagedAt = &next, nextCert, now
	out.bundle = pruneExpired(dedupe(append([]*x509.Certificate{st.signingCert, nextCert}, st.bundle...)), now)
	return &out, nil
}

// promote returns st signing with its next CA; the old CA stays in the bundle until it
// expires, for leaves it signed that are still served.
func (st *caState) promote(now time.Time) *caState {
	out := &caState{signing: *st.next, signingCert: st.nextCert}
	out.bundle = pruneExpired(dedupe(append([]*x509.Certificate{st.nextCert}, st.bundle...)), now)
	return out
}

// newCAState wraps a fresh CA.
func newCAState(ca KeyPair) (*caState, error) {
	c, err := ca.Certificate()
	if err != nil {
		return nil, err
	}
	return &caState{signing: ca, signingCert: c, bundle: []*x509.Certificate{c}}, nil
}

// parseCertificates parses every PEM certificate in data; anything else in it is an error.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("not PEM")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}

func encodeCertificates(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// dedupe keeps the first of equal certificates, in order (so bundles compare byte for byte).
func dedupe(certs []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range certs {
		if !contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func pruneExpired(certs []*x509.Certificate, now time.Time) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range certs {
		if now.Before(c.NotAfter) {
			out = append(out, c)
		}
	}
	return out
}

func contains(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// mergeBundles is the PEM union of certificate lists, in order, without duplicates or expired
// certificates.
func mergeBundles(now time.Time, bundles ...[]*x509.Certificate) []byte {
	var all []*x509.Certificate
	for _, b := range bundles {
		all = append(all, b...)
	}
	return encodeCertificates(pruneExpired(dedupe(all), now))
}
