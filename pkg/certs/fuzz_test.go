package certs

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// FuzzDecodeSecrets: whatever a Secret holds, decoding answers an error or a usable result,
// never a panic (a Secret is written by whoever has RBAC on it, not only by us).
func FuzzDecodeSecrets(f *testing.F) {
	ca, err := NewCA("ca", time.Hour, t0)
	if err != nil {
		f.Fatal(err)
	}
	leaf, err := IssueServing(ca, []string{"svc"}, time.Hour, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(leaf.CertPEM, leaf.KeyPEM, ca.CertPEM)
	f.Add(ca.CertPEM, ca.KeyPEM, ca.CertPEM)
	f.Add([]byte("garbage"), []byte{}, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, crt, key, bundle []byte) {
		s := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{
			corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key, CAKey: bundle,
			caNextCertKey: bundle, caNextKeyKey: key,
		}}
		if cur, err := decodeServing(s, t0.Add(time.Minute)); err == nil && (cur.leaf == nil || len(cur.anchors) == 0) {
			t.Fatal("decoded serving Secret without a leaf or anchors")
		}
		if st, err := decodeCA(s); err == nil && (st.signingCert == nil || !contains(st.bundle, st.signingCert)) {
			t.Fatal("decoded CA Secret without its signing CA in the bundle")
		}
	})
}
