package preview_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/preview"
)

func TestPreviewFromFiles(t *testing.T) {
	var out, errOut bytes.Buffer
	err := preview.Run(t.Context(), []string{
		"--pod", "testdata/pod.yaml", "--podsettings", "testdata/podsettings.yaml",
		"--team", "lake", "--user", "alice", "--owner", "alice@example.com", "-o", "json",
	}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	var res struct {
		Pod struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				NodeSelector map[string]string `json:"nodeSelector"`
				Containers   []struct {
					Image string `json:"image"`
					Env   []struct{ Name, Value string }
				} `json:"containers"`
			} `json:"spec"`
		} `json:"pod"`
		Applied  []string `json:"applied"`
		Patch    []struct{ Op, Path string }
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if !slices.Equal(res.Applied, []string{"efs"}) {
		t.Errorf("applied %v, want only efs (other-team is another team's)", res.Applied)
	}
	if res.Pod.Spec.Containers[0].Image != "jupyter/base:1" {
		t.Errorf("image %s", res.Pod.Spec.Containers[0].Image)
	}
	env := map[string]string{}
	for _, e := range res.Pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["NB_PREFIX"] != "/notebook/lake-alice/mine/lab" || env["USEREMAIL"] != "alice@example.com" {
		t.Errorf("env %v", env)
	}
	if !slices.ContainsFunc(res.Patch, func(op struct{ Op, Path string }) bool {
		return strings.Contains(op.Path, "kubernetes.io~1os") || op.Path == "/spec/nodeSelector"
	}) {
		t.Errorf("patch %v lacks the nodeSelector", res.Patch)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "broken") {
		t.Errorf("warnings %v", res.Warnings)
	}
}

func TestPreviewErrors(t *testing.T) {
	cases := map[string][]string{
		"no pod":         {"--team", "lake", "--podsettings", "testdata/podsettings.yaml"},
		"no team":        {"--pod", "testdata/pod.yaml", "--podsettings", "testdata/podsettings.yaml"},
		"no settings":    {"--pod", "testdata/pod.yaml", "--team", "lake"},
		"missing file":   {"--pod", "testdata/nope.yaml", "--team", "lake", "--podsettings", "testdata/podsettings.yaml"},
		"bad out format": {"--pod", "testdata/pod.yaml", "--team", "lake", "--podsettings", "testdata/podsettings.yaml", "-o", "xml"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := preview.Run(t.Context(), args, &out, &errOut); err == nil {
				t.Errorf("accepted: %s", out.String())
			}
		})
	}
}
