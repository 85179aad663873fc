package certs

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestOptionsValidate(t *testing.T) {
	base := func(mode string) Options {
		o := DefaultOptions()
		o.Mode, o.Secret, o.ServiceName = mode, "wh-cert", "wh"
		o.CertFile, o.KeyFile = "c", "k"
		return o
	}
	cases := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"self-signed defaults", func(*Options) {}, ""},
		{"csr defaults", func(o *Options) { o.Mode = ModeCSR }, ""},
		{"files", func(o *Options) { o.Mode = ModeFiles }, ""},
		{"unknown mode", func(o *Options) { o.Mode = "acme" }, "--cert-mode"},
		{"files without key", func(o *Options) { o.Mode, o.KeyFile = ModeFiles, "" }, "--tls-key-file"},
		{"files with no reload interval", func(o *Options) { o.Mode, o.ReloadInterval = ModeFiles, 0 }, "--cert-reload-interval"},
		{"no secret", func(o *Options) { o.Secret = "" }, "--cert-secret"},
		{"no service", func(o *Options) { o.ServiceName = "" }, "--service-name"},
		{"csr without signer", func(o *Options) { o.Mode, o.SignerName = ModeCSR, "" }, "--csr-signer-name"},
		{"csr without timeout", func(o *Options) { o.Mode, o.CSRTimeout = ModeCSR, 0 }, "--csr-timeout"},
		{"CA shorter than two leaves", func(o *Options) { o.Lifetime, o.CALifetime = time.Hour, 90*time.Minute }, "--ca-lifetime"},
		{"CA lifetime does not matter in csr mode", func(o *Options) { o.Mode, o.Lifetime, o.CALifetime = ModeCSR, time.Hour, time.Minute }, ""},
		{"no check interval", func(o *Options) { o.CheckInterval = 0 }, "--cert-check-interval"},
		{"empty extra host", func(o *Options) { o.ExtraHosts = []string{" "} }, "--cert-extra-hosts"},
		{"renew fraction 1", func(o *Options) { o.RenewFraction = 1 }, "--cert-renew-fraction"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := base(ModeSelfSigned)
			tc.edit(&o)
			err := o.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to name %s", err, tc.wantErr)
			}
		})
	}
}

func TestOptionsFlagsAndHosts(t *testing.T) {
	o := DefaultOptions()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.BindFlags(fs)
	err := fs.Parse([]string{"--cert-mode=csr", "--service-name=wh", "--cert-secret=s", "--ca-bundle-file=/ca.pem",
		"--cert-extra-hosts=127.0.0.1,localhost", "--cert-check-interval=5s", "--csr-signer-name=orbit.test/x"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Mode != ModeCSR || o.CABundleFile != "/ca.pem" || o.CheckInterval != 5*time.Second || o.SignerName != "orbit.test/x" {
		t.Fatalf("flags not bound: %+v", o)
	}
	want := []string{"wh", "wh.ns", "wh.ns.svc", "wh.ns.svc.cluster.local", "127.0.0.1", "localhost"}
	if got := o.Hosts("ns"); !slices.Equal(got, want) {
		t.Fatalf("Hosts = %v, want %v", got, want)
	}
}
