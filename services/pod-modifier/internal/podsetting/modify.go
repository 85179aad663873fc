package podsetting

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// Everything taken from a PodSetting is deep-copied into the Pod: the PodSettings live in a
// shared cache and the result is handed to callers that may modify it.

// applyPod applies the pod-level fields of ps.
//
// Semantics where SPEC leaves room (Beyond fields and merges):
//   - serviceAccountName replaces; the deprecated serviceAccount is replaced too, but only
//     when the Pod sets it (the API server fills it from serviceAccountName otherwise).
//   - labels, annotations, nodeSelector merge key by key, the PodSetting winning.
//   - securityContext merges by top-level field: each field the PodSetting sets replaces the
//     Pod's, the others stay.
//   - volumes replace the Pod's volume of the same name in place and append the rest in the
//     PodSetting's order.
//   - tolerations are appended unless the Pod already has an equal one (an empty operator
//     counts as Equal), so reapplying or two PodSettings sharing a toleration add it once.
//   - affinity merges by its three parts: nodeAffinity, podAffinity and podAntiAffinity each
//     replace the Pod's when the PodSetting sets it. Merging inside them (e.g. ORing node
//     selector terms) would change what an existing term means, so it is not attempted.
func applyPod(pod *corev1.Pod, ps *orbitv1.PodSetting) {
	spec := &ps.Spec
	if spec.ServiceAccountName != "" {
		pod.Spec.ServiceAccountName = spec.ServiceAccountName
		if pod.Spec.DeprecatedServiceAccount != "" {
			pod.Spec.DeprecatedServiceAccount = spec.ServiceAccountName
		}
	}
	pod.Labels = mergeStrings(pod.Labels, spec.Labels)
	pod.Annotations = mergeStrings(pod.Annotations, spec.Annotations)
	pod.Spec.NodeSelector = mergeStrings(pod.Spec.NodeSelector, spec.NodeSelector)

	if spec.SecurityContext != nil {
		if pod.Spec.SecurityContext == nil {
			pod.Spec.SecurityContext = spec.SecurityContext.DeepCopy()
		} else {
			mergeSetFields(pod.Spec.SecurityContext, spec.SecurityContext.DeepCopy())
		}
	}

	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if j := indexVolume(pod.Spec.Volumes, v.Name); j >= 0 {
			v.DeepCopyInto(&pod.Spec.Volumes[j])
		} else {
			appendCopy(&pod.Spec.Volumes, v)
		}
	}

	for i := range spec.Tolerations {
		t := &spec.Tolerations[i]
		if !hasToleration(pod.Spec.Tolerations, t) {
			appendCopy(&pod.Spec.Tolerations, t)
		}
	}

	if a := spec.Affinity; a != nil {
		if pod.Spec.Affinity == nil {
			pod.Spec.Affinity = &corev1.Affinity{}
		}
		if a.NodeAffinity != nil {
			pod.Spec.Affinity.NodeAffinity = a.NodeAffinity.DeepCopy()
		}
		if a.PodAffinity != nil {
			pod.Spec.Affinity.PodAffinity = a.PodAffinity.DeepCopy()
		}
		if a.PodAntiAffinity != nil {
			pod.Spec.Affinity.PodAntiAffinity = a.PodAntiAffinity.DeepCopy()
		}
	}
}

// applyContainer applies the container-level fields of ps to one chosen container. The
// injected variables come first so that a PodSetting's own env can still override them.
func applyContainer(c *corev1.Container, ps *orbitv1.PodSetting, ec envContext) {
	spec := &ps.Spec
	before := c.Image
	setEnv(c, EnvUserSpace, ec.userSpace)
	setEnv(c, EnvImage, before)
	if spec.NotebookApp != "" {
		setEnv(c, EnvNotebookPrefix, notebookPrefixStart+ec.userSpace+"/"+ec.podName+"/"+spec.NotebookApp)
	}
	if spec.InjectUserContext {
		setEnv(c, EnvUserName, ec.userName)
		setEnv(c, EnvUserEmail, ec.userEmail)
	}

	if spec.Image != "" {
		c.Image = spec.Image
	}
	if spec.ImagePullPolicy != "" {
		c.ImagePullPolicy = spec.ImagePullPolicy
	}
	if len(spec.Command) > 0 {
		c.Command = append([]string(nil), spec.Command...)
	}
	if len(spec.Args) > 0 {
		c.Args = append([]string(nil), spec.Args...)
	}

	for i := range spec.Env {
		e := &spec.Env[i]
		if j := indexEnv(c.Env, e.Name); j >= 0 {
			e.DeepCopyInto(&c.Env[j])
		} else {
			appendCopy(&c.Env, e)
		}
	}
	for i := range spec.EnvFrom {
		appendCopy(&c.EnvFrom, &spec.EnvFrom[i])
	}
	// Keyed by volume name as SPEC says; only the first mount of a name is replaced, so a
	// container mounting one volume twice (different subPaths) keeps distinct mount paths.
	for i := range spec.VolumeMounts {
		m := &spec.VolumeMounts[i]
		if j := indexMount(c.VolumeMounts, m.Name); j >= 0 {
			m.DeepCopyInto(&c.VolumeMounts[j])
		} else {
			appendCopy(&c.VolumeMounts, m)
		}
	}

	// Lifecycle merges by handler: postStart and preStop (and any later top-level field such
	// as stopSignal) each replace the container's when set.
	if spec.Lifecycle != nil {
		if c.Lifecycle == nil {
			c.Lifecycle = spec.Lifecycle.DeepCopy()
		} else {
			mergeSetFields(c.Lifecycle, spec.Lifecycle.DeepCopy())
		}
	}

	c.Resources.Limits = mergeResources(c.Resources.Limits, spec.Resources.Limits)
	c.Resources.Requests = mergeResources(c.Resources.Requests, spec.Resources.Requests)
	// Resource claims merge by name like the rest.
	for _, claim := range spec.Resources.Claims {
		replaced := false
		for j := range c.Resources.Claims {
			if c.Resources.Claims[j].Name == claim.Name {
				c.Resources.Claims[j] = claim
				replaced = true
				break
			}
		}
		if !replaced {
			c.Resources.Claims = append(c.Resources.Claims, claim)
		}
	}
}

// appendCopy appends a deep copy of v to *s, copying straight into the new element instead of
// through a heap copy of v (a Volume is ~250 bytes).
func appendCopy[T any, PT interface {
	*T
	DeepCopyInto(*T)
}](s *[]T, v PT) {
	var zero T
	*s = append(*s, zero)
	v.DeepCopyInto(&(*s)[len(*s)-1])
}

// setEnv sets a plain value: in place (dropping any valueFrom) if the name exists, else
// appended.
func setEnv(c *corev1.Container, name, value string) {
	if j := indexEnv(c.Env, name); j >= 0 {
		c.Env[j] = corev1.EnvVar{Name: name, Value: value}
		return
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

func indexEnv(env []corev1.EnvVar, name string) int {
	for i := range env {
		if env[i].Name == name {
			return i
		}
	}
	return -1
}

func indexMount(mounts []corev1.VolumeMount, name string) int {
	for i := range mounts {
		if mounts[i].Name == name {
			return i
		}
	}
	return -1
}

func indexVolume(vols []corev1.Volume, name string) int {
	for i := range vols {
		if vols[i].Name == name {
			return i
		}
	}
	return -1
}

func mergeStrings(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

func mergeResources(dst, src corev1.ResourceList) corev1.ResourceList {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(corev1.ResourceList, len(src))
	}
	for name, q := range src {
		dst[name] = q.DeepCopy()
	}
	return dst
}

func hasToleration(ts []corev1.Toleration, t *corev1.Toleration) bool {
	for i := range ts {
		if tolerationEqual(&ts[i], t) {
			return true
		}
	}
	return false
}

func tolerationEqual(a, b *corev1.Toleration) bool {
	op := func(o corev1.TolerationOperator) corev1.TolerationOperator {
		if o == "" {
			return corev1.TolerationOpEqual
		}
		return o
	}
	if a.Key != b.Key || op(a.Operator) != op(b.Operator) || a.Value != b.Value || a.Effect != b.Effect {
		return false
	}
	if (a.TolerationSeconds == nil) != (b.TolerationSeconds == nil) {
		return false
	}
	return a.TolerationSeconds == nil || *a.TolerationSeconds == *b.TolerationSeconds
}

// mergeSetFields copies into dst every top-level field that src sets: a non-nil pointer, a
// non-empty slice or map, a non-zero value. Reflection keeps the merge complete when a newer
// k8s.io/api adds fields (securityContext and lifecycle grow regularly); it runs only for
// PodSettings that carry these structs, over a dozen fields. src must be owned by the caller:
// its values are moved, not copied.
func mergeSetFields[T any](dst, src *T) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for i := 0; i < s.NumField(); i++ {
		f := s.Field(i)
		switch f.Kind() {
		case reflect.Slice, reflect.Map:
			if f.Len() == 0 {
				continue
			}
		default:
			if f.IsZero() {
				continue
			}
		}
		if d.Field(i).CanSet() {
			d.Field(i).Set(f)
		}
	}
}
