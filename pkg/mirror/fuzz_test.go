package mirror

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// FuzzDesired checks that Desired never panics and that whatever it returns is
// either the input unchanged or a valid reference under the mirror that a
// second pass leaves alone.
func FuzzDesired(f *testing.F) {
	seeds := []string{
		"nginx", "nginx:1.19", "quay.io/jetstack/cert-manager-controller:v1.3.2",
		"public.ecr.aws/nginx/nginx:latest", "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0",
		host + "/orbit-dev/foo:1", "localhost:5000/a:1", "nginx@" + dig, "nginx:1.25@" + dig,
		"quay.io/x/y@" + dig512, "[::1]:5000/a", "docker.io/library/nginx", "Quay.IO/x/y", "a__b/c--d:e",
		"", ":", "@", "a@b", "nginx:", "https://x/y",
	}
	for _, s := range seeds {
		for _, b := range []uint8{0, 1, 2, 3} {
			f.Add(s, b)
		}
	}
	f.Fuzz(func(t *testing.T, image string, flags uint8) {
		p := policy(BackendCodeBuild, flags&1 != 0)
		if flags&2 != 0 {
			p.Backend = BackendCopy
		}
		got, changed, err := Desired(image, p)
		if err != nil {
			return
		}
		if !changed {
			if got != image {
				t.Fatalf("Desired(%q) = %q but reports no change", image, got)
			}
			return
		}
		if got == image {
			t.Fatalf("Desired(%q) reports a change but returns the input", image)
		}
		if err := ValidateReference(got); err != nil {
			t.Fatalf("Desired(%q) = %q: %v", image, got, err)
		}
		ref, err := name.ParseReference(got, name.WeakValidation)
		if err != nil {
			t.Fatalf("Desired(%q) = %q: go-containerregistry: %v", image, got, err)
		}
		if ref.Context().RegistryStr() != host {
			t.Fatalf("Desired(%q) = %q: registry %q, want %q", image, got, ref.Context().RegistryStr(), host)
		}
		again, changedAgain, err := Desired(got, p)
		if err != nil || changedAgain || again != got {
			t.Fatalf("Desired(%q) = %q, %v, %v; want it unchanged", got, again, changedAgain, err)
		}
	})
}
