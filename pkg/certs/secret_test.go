package certs

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func TestRenewalTime(t *testing.T) {
	cases := []struct {
		name      string
		notBefore time.Time
		notAfter  time.Time
		lifetime  time.Duration
		fraction  float64
		want      time.Time
	}{
		{"exact span", t0, t0.Add(90 * time.Second), 90 * time.Second, 2.0 / 3, t0.Add(60 * time.Second)},
		{"back-dated for skew: the requested lifetime counts, not the span", t0.Add(-5 * time.Minute), t0.Add(4 * time.Second), 4 * time.Second, 0.5, t0.Add(2 * time.Second)},
		{"cut short by the CA: the shorter span counts", t0, t0.Add(10 * time.Hour), 365 * 24 * time.Hour, 0.5, t0.Add(5 * time.Hour)},
		{"no lifetime known: the span", t0, t0.Add(300 * time.Hour), 0, 2.0 / 3, t0.Add(200 * time.Hour)},
		{"a year at two thirds", t0.Add(-5 * time.Minute), t0.Add(365 * 24 * time.Hour), 365 * 24 * time.Hour, 2.0 / 3, t0.Add(365 * 24 * time.Hour * 2 / 3)},
		{"signer longer than asked: renew when the asked-for remainder is left", t0, t0.Add(100 * time.Hour), 10 * time.Hour, 0.5, t0.Add(95 * time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := RenewalTime(tc.notBefore, tc.notAfter, tc.lifetime, tc.fraction)
			if d := got.Sub(tc.want); d > time.Millisecond || d < -time.Millisecond {
				t.Fatalf("RenewalTime = %s, want %s", got, tc.want)
			}
		})
	}
}

// fixture is a CA and a serving certificate for hosts, as issued at t0.
type fixture struct {
	ca, other KeyPair
	leaf      KeyPair
}

func newFixture(t *testing.T, hosts []string, lifetime time.Duration) fixture {
	t.Helper()
	ca, err := NewCA("ca", 10*lifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other", 10*lifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := IssueServing(ca, hosts, lifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{ca: ca, other: other, leaf: leaf}
}

func tlsSecret(data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Type: corev1.SecretTypeTLS, Data: data}
}

func TestDecodeServing(t *testing.T) {
	f := newFixture(t, []string{"svc", "127.0.0.1"}, time.Hour)
	good := servingData(f.leaf, f.ca.CertPEM)
	with := func(key string, v []byte) map[string][]byte {
		d := map[string][]byte{}
		for k, x := range good {
			d[k] = x
		}
		if v == nil {
			delete(d, key)
		} else {
			d[key] = v
		}
		return d
	}
	otherLeaf, err := IssueServing(f.ca, []string{"svc"}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		secret  *corev1.Secret
		now     time.Time
		wantErr string
	}{
		{"valid", tlsSecret(good), t0.Add(time.Minute), ""},
		{"wrong type", &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: good}, t0, `type is "Opaque"`},
		{"no tls.crt", tlsSecret(with(corev1.TLSCertKey, nil)), t0, "tls.crt is missing"},
		{"no tls.key", tlsSecret(with(corev1.TLSPrivateKeyKey, nil)), t0, "tls.key is missing"},
		{"no ca.crt", tlsSecret(with(CAKey, nil)), t0, "ca.crt is missing"},
		{"garbage certificate", tlsSecret(with(corev1.TLSCertKey, []byte("garbage"))), t0, "tls.crt and tls.key"},
		{"key of another certificate", tlsSecret(with(corev1.TLSPrivateKeyKey, otherLeaf.KeyPEM)), t0, "tls.crt and tls.key"},
		{"garbage ca.crt", tlsSecret(with(CAKey, []byte("-----BEGIN NOPE-----\nAAAA\n-----END NOPE-----\n"))), t0, "ca.crt: unexpected PEM block"},
		{"ca.crt with trailing junk", tlsSecret(with(CAKey, append(bytes.Clone(f.ca.CertPEM), "junk"...))), t0, "ca.crt: not PEM"},
		{"ca.crt of another CA", tlsSecret(with(CAKey, f.other.CertPEM)), t0, "ca.crt does not verify tls.crt"},
		{"expired", tlsSecret(good), t0.Add(2 * time.Hour), "ca.crt does not verify tls.crt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeServing(tc.secret, tc.now)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got.leaf == nil || got.tls.Leaf != got.leaf || len(got.anchors) != 1 {
					t.Fatalf("decoded %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func mustCAState(t *testing.T, ca KeyPair) *caState {
	t.Helper()
	st, err := newCAState(ca)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDecodeCARoundTrip(t *testing.T) {
	f := newFixture(t, []string{"svc"}, time.Hour)
	st := mustCAState(t, f.ca)
	staged, err := st.stage(f.other, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		st   *caState
	}{{"signing only", st}, {"staged", staged}} {
		t.Run(tc.name, func(t *testing.T) {
			data, ann := tc.st.secretContent()
			s := tlsSecret(data)
			s.Annotations = ann
			got, err := decodeCA(s)
			if err != nil {
				t.Fatal(err)
			}
			if !got.signingCert.Equal(tc.st.signingCert) || len(got.bundle) != len(tc.st.bundle) {
				t.Fatalf("round trip lost the signing CA or the bundle: %+v", got)
			}
			if (got.next == nil) != (tc.st.next == nil) || (got.next != nil && !got.stagedAt.Equal(tc.st.stagedAt)) {
				t.Fatalf("round trip next: got %v at %s, want %v at %s", got.next != nil, got.stagedAt, tc.st.next != nil, tc.st.stagedAt)
			}
		})
	}

	bad := []struct {
		name    string
		secret  *corev1.Secret
		wantErr string
	}{
		{"garbage", tlsSecret(map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y")}), "signing CA"},
		{"leaf as CA", tlsSecret(map[string][]byte{"tls.crt": f.leaf.CertPEM, "tls.key": f.leaf.KeyPEM, CAKey: f.leaf.CertPEM}), "not a CA"},
		{"bundle without the signing CA", tlsSecret(map[string][]byte{"tls.crt": f.ca.CertPEM, "tls.key": f.ca.KeyPEM, CAKey: f.other.CertPEM}), "does not hold the signing CA"},
		{"wrong type", &corev1.Secret{Type: corev1.SecretTypeOpaque}, "type is"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeCA(tc.secret); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}

	t.Run("next without staging time is dropped, not fatal", func(t *testing.T) {
		data, _ := staged.secretContent()
		got, err := decodeCA(tlsSecret(data))
		if err != nil {
			t.Fatal(err)
		}
		if got.next != nil {
			t.Fatal("an unstaged next CA was kept")
		}
	})
}

func TestPlanCA(t *testing.T) {
	o := DefaultOptions()
	o.Lifetime, o.CALifetime, o.RenewFraction = time.Hour, 100*time.Hour, 0.5
	ca, err := NewCA("ca", o.CALifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	next, err := NewCA("next", o.CALifetime, t0.Add(50*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st := mustCAState(t, ca)
	stagedAt := t0.Add(50 * time.Hour)
	staged, err := st.stage(next, stagedAt)
	if err != nil {
		t.Fatal(err)
	}
	delay := promotionDelay(o)
	if delay != time.Minute {
		t.Fatalf("promotionDelay = %s, want the one-minute cap", delay)
	}
	cases := []struct {
		name     string
		st       *caState
		now      time.Time
		want     caAction
		wantNext time.Time
	}{
		{"no CA", nil, t0, caCreate, time.Time{}},
		{"young CA", st, t0.Add(time.Hour), caKeep, t0.Add(50 * time.Hour)},
		{"half-way: stage", st, t0.Add(50 * time.Hour), caStage, time.Time{}},
		{"expired: a new one", st, t0.Add(101 * time.Hour), caCreate, time.Time{}},
		{"staged: wait for the delay", staged, stagedAt.Add(delay / 2), caKeep, stagedAt.Add(delay)},
		{"staged long enough: promote", staged, stagedAt.Add(delay), caPromote, time.Time{}},
		{"staged and the old one expired: promote", staged, t0.Add(101 * time.Hour), caPromote, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, at := planCA(tc.st, o, tc.now)
			if got != tc.want || !at.Equal(tc.wantNext) {
				t.Fatalf("planCA = %s at %s, want %s at %s", got, at, tc.want, tc.wantNext)
			}
		})
	}

	t.Run("stage then promote keeps the old CA trusted", func(t *testing.T) {
		if len(staged.bundle) != 2 || !staged.signingCert.Equal(st.signingCert) {
			t.Fatalf("staged: bundle %d certificates, signing changed %v", len(staged.bundle), !staged.signingCert.Equal(st.signingCert))
		}
		promoted := staged.promote(stagedAt.Add(delay))
		if !promoted.signingCert.Equal(staged.nextCert) || promoted.next != nil {
			t.Fatal("promote did not make the next CA sign")
		}
		if !contains(promoted.bundle, st.signingCert) || !contains(promoted.bundle, staged.nextCert) {
			t.Fatal("promoted bundle must hold both CAs")
		}
		if pruned := pruneExpired(promoted.bundle, t0.Add(101*time.Hour)); contains(pruned, st.signingCert) {
			t.Fatal("an expired CA stayed in the bundle")
		}
	})
}

func TestReviewServing(t *testing.T) {
	o := DefaultOptions()
	o.Lifetime, o.CALifetime, o.RenewFraction = time.Hour, 10*time.Hour, 0.5
	hosts := []string{"svc", "svc.ns.svc", "127.0.0.1"}
	ca, err := NewCA("ca", o.CALifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other", o.CALifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(leaf KeyPair, bundle []byte, now time.Time) *servingCert {
		t.Helper()
		s := tlsSecret(servingData(leaf, bundle))
		s.Annotations = map[string]string{annIssuer: ModeSelfSigned}
		cur, err := decodeServing(s, now)
		if err != nil {
			t.Fatal(err)
		}
		return cur
	}
	leaf, err := IssueServing(ca, hosts, o.Lifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	narrow, err := IssueServing(ca, hosts[:2], o.Lifetime, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Issued 20 minutes before the CA ends: cut to the CA's end, and a new one would be too.
	late, err := IssueServing(ca, hosts, o.Lifetime, t0.Add(o.CALifetime-20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	csr := func(cur *servingCert) *servingCert {
		cur.issuer = "csr/orbit.test/x"
		return cur
	}
	st := mustCAState(t, ca)
	otherSt := mustCAState(t, other)
	staged, err := st.stage(other, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name       string
		cur        *servingCert
		ca         *caState
		now        time.Time
		wantReason string
		wantBundle []byte
		wantNext   time.Time
	}{
		{"fresh", decode(leaf, ca.CertPEM, t0), st, t0.Add(time.Minute), "", ca.CertPEM, t0.Add(30 * time.Minute)},
		{"due", decode(leaf, ca.CertPEM, t0), st, t0.Add(30 * time.Minute), "due for renewal", nil, time.Time{}},
		{"name missing", decode(narrow, ca.CertPEM, t0), st, t0, "does not cover 127.0.0.1", nil, time.Time{}},
		{"another CA signs now", decode(leaf, ca.CertPEM, t0), otherSt, t0, "not signed by the current CA", nil, time.Time{}},
		{"CA staged: the bundle grows, the leaf stays", decode(leaf, ca.CertPEM, t0), staged, t0.Add(2 * time.Minute), "", encodeCertificates(staged.bundle), t0.Add(30 * time.Minute)},
		{"due but the CA ends first: wait for the CA", decode(late, ca.CertPEM, t0.Add(o.CALifetime-20*time.Minute)), st, t0.Add(o.CALifetime - 5*time.Minute), "", ca.CertPEM, time.Time{}},
		{"csr mode: fresh", csr(decode(leaf, ca.CertPEM, t0)), nil, t0.Add(time.Minute), "", ca.CertPEM, t0.Add(30 * time.Minute)},
		{"csr mode: due", csr(decode(leaf, ca.CertPEM, t0)), nil, t0.Add(31 * time.Minute), "due for renewal", nil, time.Time{}},
		{"switched to csr mode", decode(leaf, ca.CertPEM, t0), nil, t0.Add(time.Minute), `issued by "self-signed", want "csr/orbit.test/x"`, nil, time.Time{}},
		{"switched to self-signed mode", csr(decode(leaf, ca.CertPEM, t0)), st, t0.Add(time.Minute), `issued by "csr/orbit.test/x", want "self-signed"`, nil, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := o
			if tc.ca == nil {
				o.Mode, o.SignerName = ModeCSR, "orbit.test/x"
			}
			reason, bundle, next := reviewServing(tc.cur, tc.ca, hosts, o, tc.now)
			if reason != tc.wantReason {
				t.Fatalf("reason %q, want %q", reason, tc.wantReason)
			}
			if !bytes.Equal(bundle, tc.wantBundle) {
				t.Fatalf("bundle has %d bytes, want %d", len(bundle), len(tc.wantBundle))
			}
			if d := next.Sub(tc.wantNext); d > time.Millisecond || d < -time.Millisecond {
				t.Fatalf("next %s, want %s", next, tc.wantNext)
			}
		})
	}
}

func TestMergeBundles(t *testing.T) {
	f := newFixture(t, []string{"svc"}, time.Hour)
	a, err := f.ca.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.other.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	got := mergeBundles(t0, []*x509.Certificate{a, b}, []*x509.Certificate{b, a})
	if want := append(bytes.Clone(f.ca.CertPEM), f.other.CertPEM...); !bytes.Equal(got, want) {
		t.Fatalf("merge is not the ordered union:\n%s", got)
	}
	if got := mergeBundles(t0.Add(100*time.Hour), []*x509.Certificate{a, b}); len(got) != 0 {
		t.Fatal("expired certificates were kept")
	}
}
