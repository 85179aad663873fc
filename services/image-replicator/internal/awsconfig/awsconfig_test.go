package awsconfig

import (
	"os"
	"path/filepath"
	"testing"
)

// isolate points the SDK at empty config files and a fixed environment.
func isolate(t *testing.T, region string) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_REGION", region)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestLoad(t *testing.T) {
	isolate(t, "us-east-1")
	cfg, err := Load(t.Context(), "us-west-2")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-west-2" {
		t.Errorf("region %q, want the explicit us-west-2", cfg.Region)
	}
	if got := cfg.Retryer().MaxAttempts(); got != maxAttempts {
		t.Errorf("retryer max attempts %d, want %d", got, maxAttempts)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil || creds.AccessKeyID != "AKIDTEST" {
		t.Errorf("credentials %+v, %v", creds, err)
	}

	cfg, err = Load(t.Context(), "")
	if err != nil || cfg.Region != "us-east-1" {
		t.Errorf("region from the environment: %q, %v", cfg.Region, err)
	}
}

func TestLoadNeedsRegion(t *testing.T) {
	isolate(t, "")
	if _, err := Load(t.Context(), ""); err == nil {
		t.Error("Load succeeded without a region")
	}
}
