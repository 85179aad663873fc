package codebuild

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/ecr"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

// Buildspec commands. Values reach them only as environment variables set in
// the buildspec's env section, always quoted, so no image name is ever parsed
// by the shell.
const (
	// Managed CodeBuild images start dockerd themselves in privileged mode; a
	// custom ORBIT_CODEBUILD_IMAGE may not, so start it when it is not answering.
	cmdStartDocker = `if ! docker info >/dev/null 2>&1; then nohup dockerd --host=unix:///var/run/docker.sock >/tmp/dockerd.log 2>&1 & fi`
	cmdWaitDocker  = `timeout 120 sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done' || { cat /tmp/dockerd.log >&2; exit 1; }`
	cmdLoginDest   = `aws ecr get-login-password --region "$DESTINATION_REGION" | docker login --username AWS --password-stdin "$DESTINATION_REGISTRY"`
	cmdLoginSrcECR = `aws ecr get-login-password --region "$SOURCE_REGION" | docker login --username AWS --password-stdin "$SOURCE_REGISTRY"`
	cmdLoginSrc    = `printf '%s' "$SOURCE_PASSWORD" | docker login --username "$SOURCE_USERNAME" --password-stdin "$SOURCE_REGISTRY"`
	// An existing repository is fine; any other failure stops the build with the CLI's message.
	cmdCreateRepo = `aws ecr create-repository --region "$DESTINATION_REGION" --registry-id "$DESTINATION_ACCOUNT" ` +
		`--repository-name "$DESTINATION_REPOSITORY"%s >/dev/null 2>/tmp/create-repository.err ` +
		`|| grep -q RepositoryAlreadyExistsException /tmp/create-repository.err ` +
		`|| { cat /tmp/create-repository.err >&2; exit 1; }`
	cmdPull = `docker pull "$SOURCE_IMAGE"`
	cmdTag  = `docker tag "$SOURCE_IMAGE" "$DESTINATION_IMAGE"`
	cmdPush = `docker push "$DESTINATION_IMAGE"`
)

// Buildspec returns the buildspec (YAML, version 0.2) that replicates req.
// The destination must be an ECR image by tag: docker push cannot keep a
// digest, so a digest destination belongs to the copy backend.
func Buildspec(req replicate.Request, opts Options) (string, error) {
	src, err := name.ParseReference(req.Source)
	if err != nil {
		return "", fmt.Errorf("buildspec: parse source %q: %w", req.Source, err)
	}
	dst, err := name.ParseReference(req.Destination)
	if err != nil {
		return "", fmt.Errorf("buildspec: parse destination %q: %w", req.Destination, err)
	}
	if _, ok := dst.(name.Digest); ok {
		return "", fmt.Errorf("buildspec: destination %s pins a digest, which docker push cannot keep; use the copy backend", req.Destination)
	}
	dstHost, ok := ecr.ParseHost(dst.Context().RegistryStr())
	if !ok {
		return "", fmt.Errorf("buildspec: destination %s is not in ECR", req.Destination)
	}

	vars := [][2]string{
		{"SOURCE_IMAGE", req.Source},
		{"SOURCE_REGISTRY", loginServer(src.Context().RegistryStr())},
		{"DESTINATION_IMAGE", req.Destination},
		{"DESTINATION_REGISTRY", dst.Context().RegistryStr()},
		{"DESTINATION_REPOSITORY", dst.Context().RepositoryStr()},
		{"DESTINATION_ACCOUNT", dstHost.Account},
		{"DESTINATION_REGION", dstHost.Region},
	}
	tags := ""
	if opts.EnvTag != "" {
		vars = append(vars, [2]string{"ENV_TAG", opts.EnvTag})
		tags = ` --tags "Key=Env,Value=$ENV_TAG"`
	}

	preBuild := []string{cmdLoginDest}
	var secrets [][2]string
	srcHost := normaliseHost(src.Context().RegistryStr())
	if h, ok := ecr.ParseHost(srcHost); ok && srcHost != normaliseHost(dst.Context().RegistryStr()) {
		vars = append(vars, [2]string{"SOURCE_REGION", h.Region})
		preBuild = append(preBuild, cmdLoginSrcECR)
	} else if secret, ok := sourceLogin(opts.SourceLogins, srcHost); ok {
		secrets = [][2]string{{"SOURCE_USERNAME", secret + ":username"}, {"SOURCE_PASSWORD", secret + ":password"}}
		preBuild = append(preBuild, cmdLoginSrc)
	}
	preBuild = append(preBuild, fmt.Sprintf(cmdCreateRepo, tags))

	var b strings.Builder
	b.WriteString("version: 0.2\nenv:\n  shell: bash\n  variables:\n")
	for _, kv := range vars {
		fmt.Fprintf(&b, "    %s: %s\n", kv[0], quote(kv[1]))
	}
	if len(secrets) > 0 {
		b.WriteString("  secrets-manager:\n")
		for _, kv := range secrets {
			fmt.Fprintf(&b, "    %s: %s\n", kv[0], quote(kv[1]))
		}
	}
	b.WriteString("phases:\n")
	writePhase(&b, "install", cmdStartDocker, cmdWaitDocker)
	writePhase(&b, "pre_build", preBuild...)
	writePhase(&b, "build", cmdPull, cmdTag, cmdPush)
	return b.String(), nil
}

func writePhase(b *strings.Builder, phase string, cmds ...string) {
	fmt.Fprintf(b, "  %s:\n    commands:\n", phase)
	for _, c := range cmds {
		fmt.Fprintf(b, "      - %s\n", quote(c))
	}
}

// quote writes s as a YAML double-quoted scalar: a JSON string is one, and
// JSON escaping covers everything YAML would otherwise interpret. HTML
// escaping is off so redirections stay readable in the CodeBuild console.
func quote(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// sourceLogin finds the secret for host among logins, whose keys may be
// written any way docker accepts ("docker.io", "Quay.io").
func sourceLogin(logins map[string]string, host string) (string, bool) {
	for k, secret := range logins {
		if normaliseHost(k) == host {
			return secret, true
		}
	}
	return "", false
}

// loginServer is the name docker login takes for a registry: "docker.io"
// for Docker Hub, which the CLI turns into its index server.
func loginServer(host string) string {
	if normaliseHost(host) == name.DefaultRegistry {
		return "docker.io"
	}
	return host
}

// normaliseHost maps Docker Hub's names to go-containerregistry's one and lower-cases.
func normaliseHost(host string) string {
	host = strings.ToLower(host)
	switch host {
	case "docker.io", "registry-1.docker.io":
		return name.DefaultRegistry
	}
	return host
}
