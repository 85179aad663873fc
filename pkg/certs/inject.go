package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ErrWebhookConfigMissing: the MutatingWebhookConfiguration named by --webhook-config does
// not exist (yet).
var ErrWebhookConfigMissing = errors.New("webhook configuration not found")

// caBundlePatch is a strategic merge patch setting caBundle on every webhook of cfg that does
// not carry bundle yet, and how many it changes. Webhooks merge by name, so the patch touches
// nothing else; a webhook removed meanwhile would come back incomplete and the API server
// rejects the patch, which inject answers by reading again.
func caBundlePatch(cfg *admissionregistrationv1.MutatingWebhookConfiguration, bundle []byte) ([]byte, int, error) {
	type clientConfig struct {
		CABundle []byte `json:"caBundle"`
	}
	type hook struct {
		Name         string       `json:"name"`
		ClientConfig clientConfig `json:"clientConfig"`
	}
	var hooks []hook
	for _, wh := range cfg.Webhooks {
		if !bytes.Equal(wh.ClientConfig.CABundle, bundle) {
			hooks = append(hooks, hook{Name: wh.Name, ClientConfig: clientConfig{CABundle: bundle}})
		}
	}
	if len(hooks) == 0 {
		return nil, 0, nil
	}
	patch, err := json.Marshal(map[string]any{"webhooks": hooks})
	if err != nil {
		return nil, 0, fmt.Errorf("encode caBundle patch: %w", err)
	}
	return patch, len(hooks), nil
}

// inject makes every webhook of the configuration carry bundle.
func (m *Manager) inject(ctx context.Context, bundle []byte) error {
	m.injectMu.Lock()
	defer m.injectMu.Unlock()
	name := m.opts.WebhookConfig
	cfgs := m.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	var lastErr error
	for range maxAttempts {
		cfg, err := cfgs.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%w: MutatingWebhookConfiguration %s", ErrWebhookConfigMissing, name)
		}
		if err != nil {
			return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", name, err)
		}
		patch, n, err := caBundlePatch(cfg, bundle)
		if err != nil || n == 0 {
			return err
		}
		_, err = cfgs.Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
		if err == nil {
			zerolog.Ctx(ctx).Info().Str(keyWebhookConfig, name).Int(keyWebhooks, n).Msg("CA bundle injected")
			return nil
		}
		if !apierrors.IsInvalid(err) && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: %w", name, err)
		}
		lastErr = err // changed under us: read again
	}
	return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: still changing after %d attempts: %w", name, maxAttempts, lastErr)
}
