// Package preview runs the pod-modifier's mutation offline: PodSettings from files (or from the
// cluster) and a Pod from a file, namespace labels as flags. It prints the mutated Pod, the JSON
// Patch the webhook would answer and the warnings — the very same code as the webhook, so an
// operator sees what a PodSetting will do before applying it.
package preview

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/kube"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/podsetting"
)

// Options of `pod-modifier preview`.
type Options struct {
	PodFile         string
	PodSettingFiles []string
	FromCluster     bool
	Kube            kube.Options
	Namespace       string
	Team            string
	User            string
	Owner           string
	Labels          map[string]string
	Output          string
}

// Result is what preview prints.
type Result struct {
	Pod      *corev1.Pod `json:"pod"`
	Applied  []string    `json:"applied"`
	Patch    any         `json:"patch"`
	Warnings []string    `json:"warnings"`
}

// Run is the subcommand's entry point.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts := Options{Kube: kube.DefaultOptions(), Output: "yaml"}
	fs := pflag.NewFlagSet("pod-modifier preview", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.PodFile, "pod", "", "Pod manifest (YAML or JSON); - for stdin")
	fs.StringSliceVar(&opts.PodSettingFiles, "podsettings", nil, "PodSetting manifests (YAML, several documents or a List allowed)")
	fs.BoolVar(&opts.FromCluster, "from-cluster", false, "read the team's PodSettings from the cluster instead of files")
	opts.Kube.BindFlags(fs)
	fs.StringVar(&opts.Namespace, "namespace", "", "the Pod's namespace (default: the Pod's, else <team>-<user> or <team>)")
	fs.StringVar(&opts.Team, "team", "", "namespace label orbit/team: the team whose PodSettings apply (required)")
	fs.StringVar(&opts.User, "user", "", "namespace label orbit/user")
	fs.StringVar(&opts.Owner, "owner", "", "namespace annotation owner (the user's e-mail)")
	fs.StringToStringVar(&opts.Labels, "namespace-labels", nil, "further namespace labels, k=v,…")
	fs.StringVarP(&opts.Output, "output", "o", opts.Output, "yaml or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	res, err := Preview(ctx, opts, os.Stdin)
	if err != nil {
		return err
	}
	return Print(stdout, res, opts.Output)
}

// Preview computes the mutation.
func Preview(ctx context.Context, opts Options, stdin io.Reader) (*Result, error) {
	if opts.PodFile == "" {
		return nil, errors.New("--pod is required")
	}
	if opts.Team == "" {
		return nil, errors.New("--team is required (the namespace's orbit/team label)")
	}
	if !opts.FromCluster && len(opts.PodSettingFiles) == 0 {
		return nil, errors.New("give --podsettings files or --from-cluster")
	}
	raw, err := readFile(opts.PodFile, stdin)
	if err != nil {
		return nil, err
	}
	podJSON, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", opts.PodFile, err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(podJSON, &pod); err != nil {
		return nil, fmt.Errorf("pod %s: %w", opts.PodFile, err)
	}
	ns := namespace(opts, &pod)
	pod.Namespace = ns.Name

	var settings []*orbitv1.PodSetting
	if opts.FromCluster {
		cfg, err := opts.Kube.RESTConfig()
		if err != nil {
			return nil, err
		}
		c, err := orbitclient.New(cfg)
		if err != nil {
			return nil, err
		}
		list, err := c.PodSettings(opts.Team).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list podsettings in %s: %w", opts.Team, err)
		}
		for i := range list.Items {
			settings = append(settings, &list.Items[i])
		}
	} else {
		for _, f := range opts.PodSettingFiles {
			more, err := readPodSettings(f, stdin)
			if err != nil {
				return nil, err
			}
			settings = append(settings, more...)
		}
	}
	// The webhook only sees PodSettings of the team namespace.
	kept := settings[:0]
	for _, ps := range settings {
		if ps.Namespace == "" {
			ps.Namespace = opts.Team
		}
		if ps.Namespace == opts.Team {
			kept = append(kept, ps)
		}
	}
	res := podsetting.NewSet(kept).Apply(&pod, ns)
	out := &Result{Pod: res.Pod, Applied: res.Applied, Warnings: res.Warnings, Patch: []any{}}
	if res.Changed() {
		ops, err := podsetting.Patch(podJSON, res.Pod)
		if err != nil {
			return nil, err
		}
		out.Patch = ops
	}
	return out, nil
}

func namespace(opts Options, pod *corev1.Pod) *corev1.Namespace {
	name := opts.Namespace
	if name == "" {
		name = pod.Namespace
	}
	if name == "" {
		name = opts.Team
		if opts.User != "" {
			name = opts.Team + "-" + opts.User
		}
	}
	labels := map[string]string{podsetting.LabelTeam: opts.Team}
	if opts.User != "" {
		labels[podsetting.LabelUser] = opts.User
		labels["orbit/space"] = "user"
	} else {
		labels["orbit/space"] = "team"
	}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if opts.Owner != "" {
		ns.Annotations = map[string]string{podsetting.AnnotationOwner: opts.Owner}
	}
	return ns
}

func readFile(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// readPodSettings reads PodSettings from YAML/JSON documents, lists included.
func readPodSettings(path string, stdin io.Reader) ([]*orbitv1.PodSetting, error) {
	raw, err := readFile(path, stdin)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []*orbitv1.PodSetting
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("podsettings %s: %w", path, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || string(doc) == "null" {
			continue
		}
		var meta metav1.TypeMeta
		if err := json.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("podsettings %s: %w", path, err)
		}
		switch {
		case strings.HasSuffix(meta.Kind, "List"):
			var list orbitv1.PodSettingList
			if err := json.Unmarshal(doc, &list); err != nil {
				return nil, fmt.Errorf("podsettings %s: %w", path, err)
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
		case meta.Kind == "PodSetting" || meta.Kind == "":
			var ps orbitv1.PodSetting
			if err := json.Unmarshal(doc, &ps); err != nil {
				return nil, fmt.Errorf("podsettings %s: %w", path, err)
			}
			out = append(out, &ps)
		default:
			return nil, fmt.Errorf("podsettings %s: unexpected kind %s", path, meta.Kind)
		}
	}
}

// Print writes the result as YAML or JSON.
func Print(w io.Writer, res *Result, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case "yaml":
		b, err := yaml.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		_, err = w.Write(b)
		return err
	default:
		return fmt.Errorf("--output: unknown format %q (want yaml or json)", format)
	}
}
