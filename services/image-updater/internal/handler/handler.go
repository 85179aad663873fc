// Package handler answers the image-updater's admission requests (SPEC §3.5): a thin shell
// around the pure mirror.Desired. For every container and init container of a Pod it computes
// the mirror image, rewrites the ones that differ, records the original in an annotation and
// asks for an ImageReplication per destination. Inputs come from memory only: the policy, the
// exclusions and, for the whenReplicated policy, an informer cache of ImageReplications.
package handler

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
)

// Path is the webhook path of SPEC §6.
const Path = "/pod-image-replication"

// AnnotationPrefix + container name holds the image a container asked for before the rewrite.
const AnnotationPrefix = "original-container-image/"

// Rewrite says which images are rewritten.
type Rewrite string

const (
	// RewriteAlways rewrites every image the policy maps (the original's behaviour); the
	// ImageReplication is created beside it and kubelet retries the pull until it completes.
	RewriteAlways Rewrite = "always"
	// RewriteWhenReplicated rewrites only images whose ImageReplication is Complete, for
	// clusters that still reach the source registries; the others are left as written and
	// their replication is requested, so a later Pod gets the mirror.
	RewriteWhenReplicated Rewrite = "whenReplicated"
)

// ParseRewrite parses a --policy value.
func ParseRewrite(s string) (Rewrite, error) {
	switch Rewrite(s) {
	case RewriteAlways, RewriteWhenReplicated:
		return Rewrite(s), nil
	}
	return "", fmt.Errorf("%q: want %s or %s", s, RewriteAlways, RewriteWhenReplicated)
}

// Replications is the handler's view of the ImageReplications: a cache read and a
// non-blocking request.
type Replications interface {
	// Complete reports whether the mirror is known to hold destination (its ImageReplication
	// is Complete in the cache). Called only under RewriteWhenReplicated.
	Complete(destination string) bool
	// Request asks for an ImageReplication of source to destination. It must not block and
	// must not call the API server: creation happens after the response.
	Request(ctx context.Context, source, destination string)
}

// Config is what the handler decides with.
type Config struct {
	Policy     mirror.Policy
	Exclusions *mirror.Exclusions
	Rewrite    Rewrite
}

// Handler rewrites Pod images to the mirror.
type Handler struct {
	cfg       Config
	repl      Replications
	verbosity int
	desired   *memo

	rewritten prometheus.Counter
	kept      *prometheus.CounterVec
	skipped   *prometheus.CounterVec
}

// Reasons an image that is not in the mirror is kept as written (metric label values).
const (
	keptExcluded      = "excluded"
	keptNotReplicated = "not_replicated"
	keptInvalid       = "invalid"
)

// New builds the handler and registers its metrics on reg under service's subsystem.
func New(cfg Config, repl Replications, reg prometheus.Registerer, service string, verbosity int) (*Handler, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("image-updater handler: %w", err)
	}
	if _, err := ParseRewrite(string(cfg.Rewrite)); err != nil {
		return nil, fmt.Errorf("image-updater handler: policy %w", err)
	}
	if repl == nil {
		return nil, errors.New("image-updater handler: no replications")
	}
	sub := metrics.Subsystem(service)
	h := &Handler{
		cfg: cfg, repl: repl, verbosity: verbosity, desired: newMemo(memoSize),
		rewritten: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "images_rewritten_total",
			Help: "Container and init container images rewritten to the mirror.",
		}),
		kept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "images_kept_total",
			Help: "Images outside the mirror left as written, by reason (excluded, not_replicated, invalid).",
		}, []string{"reason"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "requests_skipped_total",
			Help: "Requests allowed unchanged without looking at images, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(h.rewritten, h.kept, h.skipped)
	return h, nil
}

// containerLists are the Pod spec fields whose images are rewritten, in the order they run.
var containerLists = [...]string{"initContainers", "containers"}

// change is one rewritten image.
type change struct {
	container, source, destination string
}

// Admit implements webhook.Handler. The Pod is always allowed; a problem becomes a warning.
//
// CREATE rewrites every image the policy maps. UPDATE rewrites only the images the update
// itself changes (`kubectl set image`, a controller rolling a bare Pod): the API server lets
// an update change a container's image, and such an image would otherwise bypass the mirror,
// but an update that leaves an image alone (a label or annotation change) never restarts a
// running container by rewriting it — not even an image the Pod started with before the
// webhook existed or while the whenReplicated policy still kept it.
func (h *Handler) Admit(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.SubResource != "" {
		h.skipped.WithLabelValues("not_a_pod").Inc()
		return webhook.Allowed(), nil
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		h.skipped.WithLabelValues("operation").Inc()
		return webhook.Allowed(), nil
	}
	doc, err := parsePod(req.Object.Raw)
	if err != nil {
		h.skipped.WithLabelValues("undecodable").Inc()
		return webhook.Allowed("orbit image-updater: images not rewritten: " + err.Error()), nil
	}
	var before map[string]string
	if req.Operation == admissionv1.Update {
		old, err := parsePod(req.OldObject.Raw)
		if err != nil {
			h.skipped.WithLabelValues("undecodable").Inc()
			return webhook.Allowed("orbit image-updater: images not rewritten: old object: " + err.Error()), nil
		}
		before = old.images()
	}
	namespace := req.Namespace
	if namespace == "" {
		namespace = doc.metaString("namespace")
	}
	dryRun := req.DryRun != nil && *req.DryRun

	var changes []change
	var rewrites []rewrite
	var warnings []string
	for i, list := range containerLists {
		for j, c := range doc.lists[i] {
			if c.name == "" || c.image == "" {
				continue
			}
			if before != nil && before[list+"/"+c.name] == c.image {
				continue // not changed by this update
			}
			if h.cfg.Exclusions.Excluded(namespace, c.image) {
				h.kept.WithLabelValues(keptExcluded).Inc()
				continue
			}
			desired, changed, err := h.desired.get(c.image, h.cfg.Policy)
			if err != nil {
				h.kept.WithLabelValues(keptInvalid).Inc()
				warnings = append(warnings, fmt.Sprintf("orbit image-updater: image of container %s not rewritten: %v", c.name, err))
				continue
			}
			if !changed {
				continue
			}
			if h.cfg.Rewrite == RewriteWhenReplicated && !h.repl.Complete(desired) {
				h.kept.WithLabelValues(keptNotReplicated).Inc()
				if !dryRun {
					h.repl.Request(ctx, c.image, desired)
				}
				continue
			}
			rewrites = append(rewrites, rewrite{list: i, index: j, image: desired})
			changes = append(changes, change{container: c.name, source: c.image, destination: desired})
		}
	}
	if len(changes) == 0 {
		return webhook.Allowed(warnings...), nil
	}

	annotations := make(map[string]string, len(changes))
	for _, ch := range changes {
		annotations[AnnotationPrefix+ch.container] = ch.source
	}
	ops, err := doc.patch(rewrites, annotations)
	if err != nil {
		return webhook.Allowed(append(warnings, "orbit image-updater: images not rewritten: "+err.Error())...), nil
	}
	resp, err := webhook.PatchOpsResponse(ops, warnings)
	if err != nil {
		return webhook.Allowed(append(warnings, "orbit image-updater: images not rewritten: "+err.Error())...), nil
	}
	h.rewritten.Add(float64(len(changes)))
	if !dryRun {
		for _, ch := range changes {
			h.repl.Request(ctx, ch.source, ch.destination)
		}
	}
	h.logRewrite(ctx, namespace, doc, changes, dryRun, resp.Patch)
	return resp, nil
}

// logRewrite logs one line per rewritten Pod; verbosity 2+ adds the patch.
func (h *Handler) logRewrite(ctx context.Context, namespace string, doc *podDoc, changes []change, dryRun bool, patch []byte) {
	log := zerolog.Ctx(ctx)
	if !log.Info().Enabled() {
		return
	}
	name := doc.metaString("name")
	if name == "" {
		name = doc.metaString("generateName") + "*"
	}
	arr := zerolog.Arr()
	for _, ch := range changes {
		arr = arr.Dict(zerolog.Dict().Str("container", ch.container).Str(logging.KeyImage, ch.source).Str("mirror", ch.destination))
	}
	ev := log.Info().Str(logging.KeyNamespace, namespace).Str(logging.KeyPod, name).Array("images", arr).Bool("dryRun", dryRun)
	if h.verbosity >= 2 {
		ev = ev.RawJSON("patch", patch)
	}
	ev.Msg("images rewritten")
}
