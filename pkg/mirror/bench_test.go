package mirror

import "testing"

func BenchmarkDesired(b *testing.B) {
	images := []string{
		"nginx", "nginx:1.19", "quay.io/jetstack/cert-manager-controller:v1.3.2",
		"public.ecr.aws/nginx/nginx:latest", "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0",
		host + "/orbit-dev/foo:1", "localhost:5000/a:1", "nginx:1.25@" + dig,
	}
	for _, backend := range []Backend{BackendCodeBuild, BackendCopy} {
		p := policy(backend, true)
		b.Run(string(backend), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := Desired(images[i%len(images)], p); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkReplicationName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ReplicationName(h + "quay.io/jetstack/cert-manager-controller:v1.3.2")
	}
}
