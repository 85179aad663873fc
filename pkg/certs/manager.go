package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
)

// FieldManager names this package's writes.
const FieldManager = "orbit-certs"

// Log keys of this package (logging holds the shared ones).
const (
	keySecret        = "secret"
	keyWebhookConfig = "webhookConfig"
	keyCSR           = "csr"
	keySignerName    = "signerName"
	keySerial        = "serial"
	keyNotAfter      = "notAfter"
	keyReason        = "reason"
	keyAction        = "action"
	keyRetryIn       = "retryIn"
	keyWebhooks      = "webhooks"
)

// maxAttempts bounds the re-reads after losing a write race to another replica.
const maxAttempts = 5

// minWait keeps the loop from spinning when a deadline is a hair away.
const minWait = 250 * time.Millisecond

// deniedRetry: a denial is someone's decision; asking again at once would only pile up
// denied requests.
const deniedRetry = 5 * time.Minute

// Manager keeps a webhook's serving certificate in a Secret current (self-signed and csr
// modes), serves it, and keeps the CA bundle of the webhook configuration in step. Every
// replica runs one; they coordinate through the Secrets alone (see doc.go).
type Manager struct {
	client    kubernetes.Interface
	namespace string
	opts      Options
	now       func() time.Time
	hosts     []string

	served  atomic.Pointer[tls.Certificate]
	desired atomic.Pointer[[]byte] // the CA bundle the webhook configuration should carry
	// injectMu serialises writes of the caBundle, so a stale bundle never overtakes a newer one
	// from the same process.
	injectMu   sync.Mutex
	injectWake chan struct{}
}

var _ webhook.CertSource = (*Manager)(nil)

// NewManager checks opts (self-signed or csr mode) and returns a Manager for the Secret and
// Service in namespace. now is the clock (nil: time.Now).
func NewManager(client kubernetes.Interface, namespace string, opts Options, now func() time.Time) (*Manager, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Mode != ModeSelfSigned && opts.Mode != ModeCSR {
		return nil, fmt.Errorf("--cert-mode=%s: the certificate comes from files, there is nothing to manage", opts.Mode)
	}
	if client == nil {
		return nil, errors.New("certificate manager: no Kubernetes client")
	}
	if namespace == "" {
		return nil, errors.New("certificate manager: no namespace")
	}
	if now == nil {
		now = time.Now
	}
	return &Manager{
		client: client, namespace: namespace, opts: opts, now: now,
		hosts:      opts.Hosts(namespace),
		injectWake: make(chan struct{}, 1),
	}, nil
}

// GetCertificate implements webhook.CertSource: the certificate of the last sync, swapped
// atomically, so a renewal applies from the next handshake on.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.served.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate yet")
}

// Ready reports whether a certificate is being served (a health.Check).
func (m *Manager) Ready(context.Context) error {
	if m.served.Load() == nil {
		return fmt.Errorf("no serving certificate yet from Secret %s/%s", m.namespace, m.opts.Secret)
	}
	return nil
}

// CASecretName is the Secret holding the self-signed CA and its key.
func (m *Manager) CASecretName() string { return m.opts.Secret + "-ca" }

// Setup issues and stores the certificate if needed and injects the CA bundle once (the
// `setup` subcommand). A missing webhook configuration is retried, logged, until ctx ends.
func (m *Manager) Setup(ctx context.Context) error {
	if _, err := m.syncCert(ctx); err != nil {
		return err
	}
	if m.opts.WebhookConfig == "" {
		return nil
	}
	bo := retryBackoff(m.opts.CheckInterval)
	for {
		bundle := m.desired.Load()
		err := m.inject(ctx, *bundle)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrWebhookConfigMissing) {
			return err
		}
		retry := bo.Step()
		zerolog.Ctx(ctx).Warn().Err(err).Dur(keyRetryIn, retry).Msg("webhook configuration not found; retrying")
		if !sleep(ctx, retry, nil) {
			return fmt.Errorf("%w; gave up: %w", err, context.Cause(ctx))
		}
	}
}

// Run keeps the certificate and the CA bundle current until ctx ends: it issues or loads the
// certificate, renews it at RenewFraction of its lifetime, follows certificates other
// replicas store, and re-injects the CA bundle whenever the webhook configuration changes.
// Errors are logged and retried with backoff; Run returns nil when ctx ends. Call it once.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	certWake := make(chan struct{}, 1)
	m.watch(ctx, &wg, secretsLW(m.client, m.namespace, m.opts.Secret), &corev1.Secret{}, certWake)
	if m.opts.Mode == ModeSelfSigned {
		m.watch(ctx, &wg, secretsLW(m.client, m.namespace, m.CASecretName()), &corev1.Secret{}, certWake)
	}
	if m.opts.WebhookConfig != "" {
		m.watch(ctx, &wg, webhookConfigLW(m.client, m.opts.WebhookConfig), webhookConfigObject(), m.injectWake)
		wg.Go(func() { m.injectLoop(ctx) })
	} else {
		zerolog.Ctx(ctx).Info().Msg("no --webhook-config: the CA bundle is not injected anywhere")
	}
	m.certLoop(ctx, certWake)
	return nil
}

// certLoop syncs the certificate at its deadlines, on Secret events and every CheckInterval.
func (m *Manager) certLoop(ctx context.Context, wake <-chan struct{}) {
	log := zerolog.Ctx(ctx)
	bo := retryBackoff(m.opts.CheckInterval)
	for {
		next, err := m.syncCert(ctx)
		var d time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d = bo.Step()
			if errors.Is(err, ErrCSRDenied) {
				d = max(d, deniedRetry)
			}
			log.Error().Err(err).Str(keySecret, m.opts.Secret).Dur(keyRetryIn, d).Msg("serving certificate not ensured; retrying")
		} else {
			bo = retryBackoff(m.opts.CheckInterval)
			d = max(next.Sub(m.now()), minWait)
		}
		if !sleep(ctx, d, wake) {
			return
		}
	}
}

// injectLoop re-injects the desired CA bundle when the webhook configuration changes (watch),
// when the bundle changes, and every CheckInterval.
func (m *Manager) injectLoop(ctx context.Context) {
	log := zerolog.Ctx(ctx).With().Str(keyWebhookConfig, m.opts.WebhookConfig).Logger()
	bo := retryBackoff(m.opts.CheckInterval)
	for {
		d := m.opts.CheckInterval
		if bundle := m.desired.Load(); bundle != nil {
			if err := m.inject(ctx, *bundle); err != nil {
				if ctx.Err() != nil {
					return
				}
				d = bo.Step()
				ev := log.Error()
				if errors.Is(err, ErrWebhookConfigMissing) {
					ev = log.Warn()
				}
				ev.Err(err).Dur(keyRetryIn, d).Msg("CA bundle not injected; retrying")
			} else {
				bo = retryBackoff(m.opts.CheckInterval)
			}
		}
		if !sleep(ctx, d, m.injectWake) {
			return
		}
	}
}

// sleep waits d or until woken; false when ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func retryBackoff(limit time.Duration) wait.Backoff {
	return wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: max(limit, time.Second)}
}

// syncCert brings the CA (self-signed), the serving Secret and the served certificate up to
// date and says when it must run again.
func (m *Manager) syncCert(ctx context.Context) (time.Time, error) {
	next := m.now().Add(m.opts.CheckInterval)
	var ca *caState
	if m.opts.Mode == ModeSelfSigned {
		st, caNext, err := m.ensureCA(ctx)
		if err != nil {
			return time.Time{}, err
		}
		ca, next = st, earliest(next, caNext)
	}
	cur, curNext, err := m.ensureServing(ctx, ca)
	if err != nil {
		return time.Time{}, err
	}
	m.serve(ctx, cur)
	return earliest(next, curNext), nil
}

// earliest of a and b, ignoring zero times.
func earliest(a, b time.Time) time.Time {
	if b.IsZero() || (!a.IsZero() && a.Before(b)) {
		return a
	}
	return b
}

// ensureCA reads the CA Secret and creates, stages or promotes a CA as planCA says, with
// optimistic concurrency: a replica that loses the race reads and uses the winner's CA.
func (m *Manager) ensureCA(ctx context.Context) (*caState, time.Time, error) {
	name := m.CASecretName()
	log := zerolog.Ctx(ctx).With().Str(logging.KeyNamespace, m.namespace).Str(keySecret, name).Logger()
	for range maxAttempts {
		now := m.now()
		sec, err := m.client.CoreV1().Secrets(m.namespace).Get(ctx, name, metav1.GetOptions{})
		var st *caState
		switch {
		case apierrors.IsNotFound(err):
			sec = nil
		case err != nil:
			return nil, time.Time{}, fmt.Errorf("get CA Secret %s/%s: %w", m.namespace, name, err)
		default:
			if st, err = decodeCA(sec); err != nil {
				log.Warn().Err(err).Msg("CA Secret is invalid; replacing it with a new CA")
			}
		}
		action, next := planCA(st, m.opts, now)
		var want *caState
		switch action {
		case caKeep:
			return st, next, nil
		case caCreate, caStage:
			ca, err := NewCA(fmt.Sprintf("%s.%s webhook CA@%d", m.opts.ServiceName, m.namespace, now.Unix()), m.opts.CALifetime, now)
			if err != nil {
				return nil, time.Time{}, err
			}
			if action == caCreate {
				want, err = newCAState(ca)
			} else {
				want, err = st.stage(ca, now)
			}
			if err != nil {
				return nil, time.Time{}, err
			}
		case caPromote:
			want = st.promote(now)
		}
		data, ann := want.secretContent()
		_, err = m.writeSecret(ctx, sec, name, data, ann)
		if isRace(err) {
			log.Debug().Err(err).Msg("CA Secret changed meanwhile; reading it again")
			continue
		}
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("write CA Secret %s/%s: %w", m.namespace, name, err)
		}
		c := want.signingCert
		if want.nextCert != nil {
			c = want.nextCert
		}
		log.Info().Str(keyAction, action.String()).Str(keySerial, c.SerialNumber.Text(16)).Time(keyNotAfter, c.NotAfter).Msg("CA Secret written")
		_, next = planCA(want, m.opts, now)
		return want, next, nil
	}
	return nil, time.Time{}, fmt.Errorf("CA Secret %s/%s: still changing under us after %d attempts", m.namespace, name, maxAttempts)
}

// ensureServing reads the serving Secret, keeps it when it is sound and not due, and otherwise
// issues a certificate, publishes its CA bundle and only then stores it — with optimistic
// concurrency, so replicas that start or renew together end up with the one that was stored.
func (m *Manager) ensureServing(ctx context.Context, ca *caState) (*servingCert, time.Time, error) {
	name := m.opts.Secret
	secrets := m.client.CoreV1().Secrets(m.namespace)
	log := zerolog.Ctx(ctx).With().Str(logging.KeyNamespace, m.namespace).Str(keySecret, name).Logger()
	for range maxAttempts {
		now := m.now()
		sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
		var cur *servingCert
		reason := "missing"
		switch {
		case apierrors.IsNotFound(err):
			sec = nil
		case err != nil:
			return nil, time.Time{}, fmt.Errorf("get serving Secret %s/%s: %w", m.namespace, name, err)
		default:
			if cur, err = decodeServing(sec, now); err != nil {
				log.Warn().Err(err).Msg("serving certificate Secret is invalid; replacing it")
				reason = "invalid: " + err.Error()
			}
		}
		if cur != nil {
			var bundle []byte
			var next time.Time
			reason, bundle, next = reviewServing(cur, ca, m.hosts, m.opts, now)
			if reason == "" {
				if bytes.Equal(bundle, cur.bundle) {
					m.setDesired(bundle)
					return cur, next, nil
				}
				// The CA bundle changed (a CA was staged or promoted): the Secret's ca.crt follows,
				// so it always is what the webhook configuration carries.
				if err := m.publish(ctx, bundle, true); err != nil {
					return nil, time.Time{}, err
				}
				if _, err := m.writeSecret(ctx, sec, name, servingData(cur.pair, bundle), m.servingAnnotations()); err != nil {
					if isRace(err) {
						continue
					}
					return nil, time.Time{}, fmt.Errorf("update CA bundle of serving Secret %s/%s: %w", m.namespace, name, err)
				}
				log.Info().Msg("serving Secret's CA bundle updated")
				cur.bundle = bundle
				return cur, next, nil
			}
		}

		pair, anchors, err := m.issue(ctx, ca)
		if err != nil {
			return nil, time.Time{}, err
		}
		var keep []*x509.Certificate
		if cur != nil {
			keep = cur.anchors // replicas serve the current certificate until they load the new one
		}
		bundle := mergeBundles(now, anchors, keep)
		if err := m.publish(ctx, bundle, cur != nil); err != nil {
			return nil, time.Time{}, err
		}
		stored, err := m.writeSecret(ctx, sec, name, servingData(pair, bundle), m.servingAnnotations())
		if isRace(err) {
			log.Info().Err(err).Msg("another replica stored a certificate first; using it")
			continue
		}
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("store serving Secret %s/%s: %w", m.namespace, name, err)
		}
		out, err := decodeServing(stored, m.now())
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("serving Secret %s/%s just stored does not check: %w", m.namespace, name, err)
		}
		log.Info().Str(keyReason, reason).Str(keySerial, out.leaf.SerialNumber.Text(16)).Time(keyNotAfter, out.leaf.NotAfter).Msg("serving certificate issued")
		_, _, next := reviewServing(out, ca, m.hosts, m.opts, now)
		return out, next, nil
	}
	return nil, time.Time{}, fmt.Errorf("serving Secret %s/%s: still changing under us after %d attempts", m.namespace, name, maxAttempts)
}

func (m *Manager) servingAnnotations() map[string]string {
	return map[string]string{annIssuer: issuerID(m.opts)}
}

// reviewServing says why cur must be replaced ("" when it stays), the CA bundle its Secret
// should carry and when to look again (zero: the CA's schedule decides).
func reviewServing(cur *servingCert, ca *caState, hosts []string, o Options, now time.Time) (string, []byte, time.Time) {
	if want := issuerID(o); cur.issuer != want {
		return fmt.Sprintf("issued by %q, want %q", cur.issuer, want), nil, time.Time{}
	}
	for _, h := range hosts {
		if cur.leaf.VerifyHostname(h) != nil {
			return "does not cover " + h, nil, time.Time{}
		}
	}
	renewAt := RenewalTime(cur.leaf.NotBefore, cur.leaf.NotAfter, o.Lifetime, o.RenewFraction)
	if ca == nil {
		if !now.Before(renewAt) {
			return "due for renewal", nil, time.Time{}
		}
		return "", cur.bundle, renewAt
	}
	if cur.leaf.CheckSignatureFrom(ca.signingCert) != nil {
		return "not signed by the current CA", nil, time.Time{}
	}
	bundle := mergeBundles(now, ca.bundle, cur.anchors)
	if !now.Before(renewAt) {
		// A leaf ends no later than its CA: when a new one would not outlive this one, wait for
		// the CA's rotation instead of re-issuing in a loop.
		newEnd := now.Add(o.Lifetime)
		if ca.signingCert.NotAfter.Before(newEnd) {
			newEnd = ca.signingCert.NotAfter
		}
		if newEnd.After(cur.leaf.NotAfter) {
			return "due for renewal", nil, time.Time{}
		}
		return "", bundle, time.Time{}
	}
	return "", bundle, renewAt
}

// issue gets a new certificate and the CA certificates that verify it.
func (m *Manager) issue(ctx context.Context, ca *caState) (KeyPair, []*x509.Certificate, error) {
	if ca == nil {
		return m.issueCSR(ctx)
	}
	pair, err := IssueServing(ca.signing, m.hosts, m.opts.Lifetime, m.now())
	if err != nil {
		return KeyPair{}, nil, fmt.Errorf("issue serving certificate: %w", err)
	}
	return pair, ca.bundle, nil
}

// publish makes bundle the desired CA bundle and injects it now, before the certificate it
// verifies is stored. protect: a certificate is being served that a failed injection must not
// break, so the caller must not go on. A missing configuration breaks nothing (nobody calls
// the webhook); it is injected once it appears.
func (m *Manager) publish(ctx context.Context, bundle []byte, protect bool) error {
	m.setDesired(bundle)
	if m.opts.WebhookConfig == "" {
		return nil
	}
	err := m.inject(ctx, bundle)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrWebhookConfigMissing):
		zerolog.Ctx(ctx).Warn().Err(err).Msg("webhook configuration not found; the CA bundle is injected once it appears")
		return nil
	case !protect:
		zerolog.Ctx(ctx).Error().Err(err).Msg("CA bundle not injected; storing the certificate anyway, as none is served")
		return nil
	default:
		return fmt.Errorf("inject the CA bundle before storing a certificate it verifies: %w", err)
	}
}

func (m *Manager) setDesired(bundle []byte) {
	if old := m.desired.Load(); old != nil && bytes.Equal(*old, bundle) {
		return
	}
	b := bytes.Clone(bundle)
	m.desired.Store(&b)
	poke(m.injectWake)
}

// serve swaps the served certificate when the Secret holds a new one.
func (m *Manager) serve(ctx context.Context, cur *servingCert) {
	if old := m.served.Load(); old != nil && bytes.Equal(old.Certificate[0], cur.tls.Certificate[0]) {
		return
	}
	m.served.Store(cur.tls)
	zerolog.Ctx(ctx).Info().Str(keySecret, m.opts.Secret).Str(keySerial, cur.leaf.SerialNumber.Text(16)).
		Time(keyNotAfter, cur.leaf.NotAfter).Msg("serving certificate loaded")
}

// writeSecret creates a Secret (existing nil) or replaces the content of existing, keeping its
// resourceVersion so a concurrent write fails with a Conflict instead of being overwritten.
func (m *Manager) writeSecret(ctx context.Context, existing *corev1.Secret, name string, data map[string][]byte, ann map[string]string) (*corev1.Secret, error) {
	secrets := m.client.CoreV1().Secrets(m.namespace)
	if existing == nil {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: m.namespace, Labels: map[string]string{labelManagedBy: managedBy}, Annotations: ann},
			Type:       corev1.SecretTypeTLS,
			Data:       data,
		}
		return secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: FieldManager})
	}
	if existing.Type == corev1.SecretTypeTLS && (existing.Immutable == nil || !*existing.Immutable) {
		s := existing.DeepCopy()
		s.Data = data
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[labelManagedBy] = managedBy
		delete(s.Annotations, annNextStagedAt)
		for k, v := range ann {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[k] = v
		}
		return secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager})
	}
	// Type and immutability cannot change in place: delete exactly what was read, then create.
	uid, rv := existing.UID, existing.ResourceVersion
	err := secrets.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	return m.writeSecret(ctx, nil, name, data, ann)
}

// isRace: another writer got there first; read again.
func isRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err)
}
