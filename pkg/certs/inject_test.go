package certs

import (
	"encoding/json"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

func TestCABundlePatch(t *testing.T) {
	bundle := []byte("-----BEGIN CERTIFICATE-----\nnew\n")
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{Webhooks: []admissionregistrationv1.MutatingWebhook{
		{Name: "a.orbit.aws"},
		{Name: "b.orbit.aws", ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: bundle}},
		{Name: "c.orbit.aws", ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: []byte("old")}},
	}}
	patch, n, err := caBundlePatch(cfg, bundle)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("patch changes %d webhooks, want 2 (a and c)", n)
	}
	var got struct {
		Webhooks []struct {
			Name         string                     `json:"name"`
			ClientConfig map[string]json.RawMessage `json:"clientConfig"`
		} `json:"webhooks"`
	}
	if err := json.Unmarshal(patch, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Webhooks) != 2 || got.Webhooks[0].Name != "a.orbit.aws" || got.Webhooks[1].Name != "c.orbit.aws" {
		t.Fatalf("patch %s", patch)
	}
	for _, wh := range got.Webhooks {
		var b []byte
		if err := json.Unmarshal(wh.ClientConfig["caBundle"], &b); err != nil || string(b) != string(bundle) || len(wh.ClientConfig) != 1 {
			t.Fatalf("webhook %s: clientConfig %s, want only the caBundle", wh.Name, patch)
		}
	}

	cfg.Webhooks[0].ClientConfig.CABundle, cfg.Webhooks[2].ClientConfig.CABundle = bundle, bundle
	if patch, n, err := caBundlePatch(cfg, bundle); err != nil || n != 0 || patch != nil {
		t.Fatalf("an injected configuration is patched again: %s (%d, %v)", patch, n, err)
	}
}
