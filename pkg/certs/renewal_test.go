package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// With lifetimes of seconds the leaf is renewed every two seconds and the CA rotated every
// five, by two replicas sharing the Secrets, while a client keeps calling both over new
// connections trusting whatever caBundle the webhook configuration holds at that moment (as
// the API server does) and Pods keep being created through the API server, which calls one
// replica per webhook: not one request fails. The replica that did not write a certificate
// serves it as soon as it sees the Secret change, so this holds only if the bundle is
// injected before the certificate is stored. Not parallel: it wants the machine.
func TestRenewalUnderLoad(t *testing.T) {
	needEnv(t)
	ns := env.Namespace(t, "renew", nil).Name
	cfgName := "certs-" + ns
	o := options(ns, cfgName)
	o.Lifetime, o.CALifetime, o.RenewFraction = 4*time.Second, 10*time.Second, 0.5
	m1, m2 := newManager(t, env.Clientset, ns, o), newManager(t, env.Clientset, ns, o)
	addrs := []string{serveWebhook(t, m1), serveWebhook(t, m2)}
	createWebhookConfig(t, cfgName, ns, nil, addrs...)
	ctx1, _ := logCtx(t, "replica-1")
	ctx2, _ := logCtx(t, "replica-2")
	runManager(t, ctx1, m1)
	runManager(t, ctx2, m2)
	podGoesThrough(t, ns, 30*time.Second)

	load, stop := context.WithTimeout(t.Context(), 16*time.Second)
	defer stop()
	var (
		mu               sync.Mutex
		serials, issuers = map[string]bool{}, map[string]bool{}
		direct, pods     int
		failures         []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; load.Err() == nil; i++ {
			// Requests in flight when the load ends still count; only new ones stop.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(load), 10*time.Second)
			leaf, err := httpsGet(rctx, cfgName, addrs, i)
			cancel()
			if err != nil {
				fail("direct request %d: %v", i, err)
				continue
			}
			mu.Lock()
			direct++
			serials[leaf.SerialNumber.String()] = true
			issuers[string(leaf.RawIssuer)] = true
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for i := 0; load.Err() == nil; i++ {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(load), 20*time.Second)
			err := createPod(rctx, ns, fmt.Sprintf("load-%d", i))
			cancel()
			if err != nil {
				fail("pod %d: %v", i, err)
				continue
			}
			mu.Lock()
			pods++
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	})
	wg.Wait()

	t.Logf("%d direct requests, %d pods, %d certificates served, %d CAs", direct, pods, len(serials), len(issuers))
	if len(failures) > 0 {
		t.Fatalf("%d failed requests, first: %s", len(failures), failures[0])
	}
	if len(serials) < 4 {
		t.Errorf("%d certificates served in 16s with a 4s lifetime: renewal did not happen", len(serials))
	}
	if len(issuers) < 2 {
		t.Errorf("%d CAs in 16s with a 10s CA lifetime: the CA was not rotated", len(issuers))
	}
	if direct < 50 || pods < 20 {
		t.Errorf("too little load to prove anything: %d direct requests, %d pods", direct, pods)
	}
}

// httpsGet asks replica i%2 for /health over a new connection trusting the caBundle its
// webhook in the configuration holds now, and returns the served leaf.
func httpsGet(ctx context.Context, cfgName string, addrs []string, i int) (*x509.Certificate, error) {
	bundles, err := webhookBundles(ctx, cfgName)
	if err != nil {
		return nil, err
	}
	addr := addrs[i%2]
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundles[i%2]) {
		return nil, fmt.Errorf("webhook %d has no CA bundle", i%2)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/health", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return resp.TLS.PeerCertificates[0], nil
}
