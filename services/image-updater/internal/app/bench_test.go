package app_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/orbit-workbench/orbit-controller/pkg/loadtest"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/handler"
)

// Load of BenchmarkWebhookLatencyTLS: an open-loop generator in a separate process (as the
// API server is) sends requests at a fixed rate whatever the answers do, so a slow server is
// not hidden by waiting for it, over several keep-alive TLS connections. Each request is
// measured from the moment it is handed to the HTTP client — waiting for a free connection
// included — to the last byte of the answer. The generator's own lateness (Go's timers wake
// up to ~1 ms late, so requests leave in small bursts) is reported apart as send-lag, and the
// latency from the scheduled send (lag included) as sched-p99.
const (
	benchRate    = 2000 // requests per second
	benchConns   = 8    // keep-alive connections
	benchWarmup  = time.Second
	benchMeasure = 5 * time.Second
)

// BenchmarkWebhookLatencyTLS: latency of the image-updater over TLS at 2,000 requests/s for
// a realistic Deployment Pod (two containers, an init container, probes, resources, volumes,
// owner reference), each answered with a rewrite of three images. Reports p50/p99/max in ms,
// errors and the rate achieved.
func BenchmarkWebhookLatencyTLS(b *testing.B) {
	if env == nil {
		b.Skip("no control plane")
	}
	orbitNS := env.Namespace(b, "orbit", nil)
	u := startUpdater(b, options(), orbitNS.Name, env.Config)
	body := benchReview(b)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(u.ca.CertPEM)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
	b.Cleanup(transport.CloseIdleConnections)
	url := "https://" + u.addr + handler.Path
	// One answer checked in full: a patch that rewrites the Pod.
	checkAnswer(b, &http.Client{Transport: transport, Timeout: 5 * time.Second}, url, body)

	load := loadtest.HTTPLoad{
		URL: url, CAPEM: u.ca.CertPEM, Body: body, Rate: benchRate, Duration: benchMeasure,
		Warmup: benchWarmup, Concurrency: benchConns, MustContain: []byte(`"patch":`),
	}
	for b.Loop() {
		r, err := loadtest.RunHTTPInChild(b.Context(), load)
		if err != nil {
			b.Fatal(err)
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(r.ServicePercentile(50)), "p50-ms")
		b.ReportMetric(ms(r.ServicePercentile(99)), "p99-ms")
		b.ReportMetric(ms(r.ServicePercentile(99.9)), "p99.9-ms")
		b.ReportMetric(ms(r.ServicePercentile(100)), "max-ms")
		b.ReportMetric(ms(r.Percentile(99)), "sched-p99-ms")
		b.ReportMetric(ms(r.LagPercentile(99)), "send-lag-p99-ms")
		b.ReportMetric(float64(r.Errors), "errors")
		b.ReportMetric(float64(r.Requests)/r.Elapsed.Seconds(), "req/s")
		if r.Errors > 0 {
			b.Errorf("%d errors, first: %v", r.Errors, r.FirstErr)
		}
	}
}

func checkAnswer(b *testing.B, client *http.Client, url string, body []byte) {
	b.Helper()
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		b.Fatal(err)
	}
	if review.Response == nil || !review.Response.Allowed || len(review.Response.Patch) == 0 {
		b.Fatalf("answer %+v: want an allowed patch", review.Response)
	}
	var ops []map[string]any
	if err := json.Unmarshal(review.Response.Patch, &ops); err != nil || len(ops) != 6 {
		b.Fatalf("patch %s: want three image replacements and three annotations", review.Response.Patch)
	}
}

// benchReview is the AdmissionReview of a Pod as a Deployment's ReplicaSet creates it.
func benchReview(b *testing.B) []byte {
	b.Helper()
	probe := &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds:    10,
		FailureThreshold: 3,
	}
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
	env := []corev1.EnvVar{
		{Name: "AWS_REGION", Value: "us-west-2"}, {Name: "LOG_LEVEL", Value: "info"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
	}
	mounts := []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "config", MountPath: "/etc/app", ReadOnly: true},
		{Name: "kube-api-access-x2x9k", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}
	isController := true
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "web-7d4b9c8f6d-", Namespace: "team-a",
			Labels:      map[string]string{"app": "web", "pod-template-hash": "7d4b9c8f6d", "orbit/space": "user", "app.kubernetes.io/part-of": "orbit"},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z", "prometheus.io/scrape": "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d4b9c8f6d",
				UID: "6a7c3f0e-5a8d-4c1b-9b77-2f6d7e1c9a10", Controller: &isController, BlockOwnerDeletion: &isController}},
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "quay.io/org/migrations:v2.4.1", Command: []string{"/migrate", "up"},
				Env: env, VolumeMounts: mounts, Resources: res, TerminationMessagePath: "/dev/termination-log", ImagePullPolicy: corev1.PullIfNotPresent}},
			Containers: []corev1.Container{
				{Name: "web", Image: "nginx:1.25.3", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
					Env: env, VolumeMounts: mounts, Resources: res, LivenessProbe: probe, ReadinessProbe: probe,
					TerminationMessagePath: "/dev/termination-log", ImagePullPolicy: corev1.PullIfNotPresent},
				{Name: "metrics", Image: "public.ecr.aws/bitnami/prometheus-exporter:0.15.0", Args: []string{"--web.listen-address=:9113"},
					Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9113, Protocol: corev1.ProtocolTCP}}, Resources: res,
					TerminationMessagePath: "/dev/termination-log", ImagePullPolicy: corev1.PullIfNotPresent},
			},
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "web-data"}}},
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}},
				{Name: "kube-api-access-x2x9k", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				}}}},
			},
			RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst, ServiceAccountName: "default",
			NodeSelector: map[string]string{"kubernetes.io/os": "linux", "orbit/node-type": "ec2"},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname",
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}}}},
		},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:         "705ab4f5-6393-11e8-b7cc-42010a800002",
			Kind:        metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:    metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			RequestKind: &metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Namespace:   "team-a",
			Operation:   admissionv1.Create,
			Object:      runtime.RawExtension{Raw: raw},
			Options:     runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
		},
	}
	review.Request.UserInfo.Username = "system:serviceaccount:kube-system:replicaset-controller"
	review.Request.UserInfo.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}
	out, err := json.Marshal(review)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("AdmissionReview of %d bytes (Pod %d bytes)", len(out), len(raw))
	return out
}
