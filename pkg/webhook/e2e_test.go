package webhook_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv("ORBIT_NO_CONTROL_PLANE") != "" { // fuzzing runs only the unit targets
		os.Exit(m.Run())
	}
	testenv.Main(m, testenv.Options{NoControllerManager: true}, &env)
}

func issue(t *testing.T, ca certs.KeyPair) *tls.Certificate {
	t.Helper()
	kp, err := certs.IssueServing(ca, []string{"127.0.0.1", "localhost"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := kp.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The API server itself calls the scaffolding over TLS when a Pod is created, and a
// certificate swapped while serving is used from the next connection on.
func TestAPIServerCallsWebhookOverTLS(t *testing.T) {
	if env == nil {
		t.Fatal("no control plane")
	}
	ctx := t.Context()
	ca, err := certs.NewCA("test-ca", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	src := webhook.NewStaticCert(issue(t, ca))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- webhook.Serve(srvCtx, ln, newRouter(prometheus.NewRegistry()), src, 5*time.Second) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	ns := env.Namespace(t, "wh", map[string]string{"orbit-test": "webhook"})
	url := "https://" + ln.Addr().String() + "/mutate"
	env.RegisterWebhook(t, testenv.PodWebhook("test-"+ns.Name, url, ca.CertPEM, map[string]string{"kubernetes.io/metadata.name": ns.Name}))

	createPod := func(name string) (*corev1.Pod, error) {
		return env.Clientset.CoreV1().Pods(ns.Name).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "x"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}, metav1.CreateOptions{})
	}
	// The configuration takes a moment to reach the API server's webhook cache.
	var pod *corev1.Pod
	testenv.Eventually(t, 10*time.Second, func(context.Context) (bool, string) {
		_ = env.Clientset.CoreV1().Pods(ns.Name).Delete(ctx, "p1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		pod, err = createPod("p1")
		return err == nil && pod.Labels["orbit/touched"] == "yes", "pod not mutated"
	})

	// Renewal: swap to a new certificate of the same CA while serving. New connections get it
	// (seen by serial number), and the API server keeps calling without a failure.
	renewed := issue(t, ca)
	src.Set(renewed)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("dial after swap: %v", err)
	}
	served0 := conn.ConnectionState().PeerCertificates[0]
	_ = conn.Close()
	leaf, err := x509.ParseCertificate(renewed.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if served0.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("served serial %s, want the renewed %s", served0.SerialNumber, leaf.SerialNumber)
	}
	if pod, err = createPod("p2"); err != nil || pod.Labels["orbit/touched"] != "yes" {
		t.Fatalf("after renewal: pod %v, err %v", pod, err)
	}
}
