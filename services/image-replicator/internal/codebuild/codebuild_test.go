package codebuild

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscodebuild "github.com/aws/aws-sdk-go-v2/service/codebuild"
	"sigs.k8s.io/yaml"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/awstest"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

const (
	targetStart = "CodeBuild_20161006.StartBuild"
	targetGet   = "CodeBuild_20161006.BatchGetBuilds"
	mirrorHost  = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
)

func newBackend(t *testing.T, opts Options) (*Backend, *awstest.Server) {
	t.Helper()
	srv := awstest.New(t)
	client := awscodebuild.NewFromConfig(srv.Config(), func(o *awscodebuild.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
	})
	if opts.Project == "" {
		opts.Project = "orbit-image-replication"
	}
	b, err := New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, srv
}

// buildspec is the part of a buildspec the tests look at.
type buildspec struct {
	Version string `json:"version"`
	Env     struct {
		Shell          string            `json:"shell"`
		Variables      map[string]string `json:"variables"`
		SecretsManager map[string]string `json:"secrets-manager"`
	} `json:"env"`
	Phases map[string]struct {
		Commands []string `json:"commands"`
	} `json:"phases"`
}

func parseBuildspec(t *testing.T, s string) buildspec {
	t.Helper()
	var b buildspec
	if err := yaml.UnmarshalStrict([]byte(s), &b); err != nil {
		t.Fatalf("buildspec is not valid YAML: %v\n%s", err, s)
	}
	return b
}

func TestStartBuild(t *testing.T) {
	b, srv := newBackend(t, Options{EnvTag: "orbit-dev", Image: "aws/codebuild/standard:7.0"})
	srv.Handle(targetStart, func(map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"build": map[string]any{"id": "orbit-image-replication:0001", "buildStatus": "IN_PROGRESS"}}
	})
	req := replicate.Request{Source: "quay.io/jetstack/cert-manager-controller:v1.3.2", Destination: mirrorHost + "/orbit-dev/quay.io/jetstack/cert-manager-controller:v1.3.2"}
	st, err := b.Start(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "orbit-image-replication:0001" || st.Done {
		t.Errorf("Start = %+v, want the build id and not done", st)
	}

	calls := srv.Calls(targetStart)
	if len(calls) != 1 {
		t.Fatalf("StartBuild called %d times", len(calls))
	}
	in := calls[0].Body
	for key, want := range map[string]any{
		"projectName":              "orbit-image-replication",
		"sourceTypeOverride":       "NO_SOURCE",
		"timeoutInMinutesOverride": float64(30),
		"privilegedModeOverride":   true,
		"imageOverride":            "aws/codebuild/standard:7.0",
	} {
		if in[key] != want {
			t.Errorf("StartBuild %s = %v, want %v", key, in[key], want)
		}
	}
	spec := parseBuildspec(t, in["buildspecOverride"].(string))
	if spec.Version != "0.2" || spec.Env.Shell != "bash" {
		t.Errorf("buildspec version %q shell %q", spec.Version, spec.Env.Shell)
	}
	for k, want := range map[string]string{
		"SOURCE_IMAGE":           req.Source,
		"SOURCE_REGISTRY":        "quay.io",
		"DESTINATION_IMAGE":      req.Destination,
		"DESTINATION_REGISTRY":   mirrorHost,
		"DESTINATION_REPOSITORY": "orbit-dev/quay.io/jetstack/cert-manager-controller",
		"DESTINATION_ACCOUNT":    "123456789012",
		"DESTINATION_REGION":     "us-west-2",
		"ENV_TAG":                "orbit-dev",
	} {
		if got := spec.Env.Variables[k]; got != want {
			t.Errorf("buildspec variable %s = %q, want %q", k, got, want)
		}
	}
	install := strings.Join(spec.Phases["install"].Commands, "\n")
	if !strings.Contains(install, "dockerd") || !strings.Contains(install, "until docker info") {
		t.Errorf("install phase does not bring docker up:\n%s", install)
	}
	pre := spec.Phases["pre_build"].Commands
	if len(pre) != 2 {
		t.Fatalf("pre_build = %q, want ECR login and create-repository", pre)
	}
	if !strings.Contains(pre[0], `aws ecr get-login-password --region "$DESTINATION_REGION" | docker login --username AWS --password-stdin "$DESTINATION_REGISTRY"`) {
		t.Errorf("no ECR login: %s", pre[0])
	}
	for _, want := range []string{
		`aws ecr create-repository`, `--repository-name "$DESTINATION_REPOSITORY"`, `--registry-id "$DESTINATION_ACCOUNT"`,
		`--tags "Key=Env,Value=$ENV_TAG"`, `grep -q RepositoryAlreadyExistsException`, `exit 1`,
	} {
		if !strings.Contains(pre[1], want) {
			t.Errorf("create-repository command lacks %q: %s", want, pre[1])
		}
	}
	wantBuild := []string{`docker pull "$SOURCE_IMAGE"`, `docker tag "$SOURCE_IMAGE" "$DESTINATION_IMAGE"`, `docker push "$DESTINATION_IMAGE"`}
	if got := spec.Phases["build"].Commands; strings.Join(got, "\n") != strings.Join(wantBuild, "\n") {
		t.Errorf("build phase = %q, want %q", got, wantBuild)
	}
}

func TestStartBuildOptions(t *testing.T) {
	// No image override, a custom timeout, no Env tag.
	b, srv := newBackend(t, Options{TimeoutMinutes: 45})
	srv.Handle(targetStart, func(map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"build": map[string]any{"id": "p:2", "buildStatus": "IN_PROGRESS"}}
	})
	if _, err := b.Start(t.Context(), replicate.Request{Source: "nginx", Destination: mirrorHost + "/orbit-dev/nginx"}); err != nil {
		t.Fatal(err)
	}
	in := srv.Calls(targetStart)[0].Body
	if _, ok := in["imageOverride"]; ok {
		t.Errorf("imageOverride sent without ORBIT_CODEBUILD_IMAGE: %v", in["imageOverride"])
	}
	if in["timeoutInMinutesOverride"] != float64(45) {
		t.Errorf("timeoutInMinutesOverride = %v, want 45", in["timeoutInMinutesOverride"])
	}
	spec := parseBuildspec(t, in["buildspecOverride"].(string))
	if strings.Contains(strings.Join(spec.Phases["pre_build"].Commands, "\n"), "--tags") {
		t.Error("repository tagged without an Env tag configured")
	}
	if got := spec.Env.Variables["SOURCE_REGISTRY"]; got != "docker.io" {
		t.Errorf("SOURCE_REGISTRY for Docker Hub = %q, want docker.io (docker login's name for it)", got)
	}
}

func TestStartBuildErrors(t *testing.T) {
	tests := []struct {
		name      string
		code      string
		retryable bool
	}{
		{name: "throttling", code: "ThrottlingException", retryable: true},
		{name: "concurrent build limit", code: "AccountLimitExceededException", retryable: true},
		{name: "no such project", code: "ResourceNotFoundException", retryable: false},
		{name: "access denied", code: "AccessDeniedException", retryable: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srv := newBackend(t, Options{})
			srv.Handle(targetStart, func(map[string]any) (int, any) { return awstest.Error(tt.code, "no") })
			_, err := b.Start(t.Context(), replicate.Request{Source: "nginx", Destination: mirrorHost + "/orbit-dev/nginx"})
			if err == nil {
				t.Fatal("Start succeeded")
			}
			if got := replicate.IsRetryable(err); got != tt.retryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tt.retryable)
			}
			if !strings.Contains(err.Error(), tt.code) {
				t.Errorf("error %q does not name %s", err, tt.code)
			}
		})
	}
}

func TestPoll(t *testing.T) {
	failedPhases := []any{
		map[string]any{"phaseType": "PRE_BUILD", "phaseStatus": "SUCCEEDED"},
		map[string]any{"phaseType": "BUILD", "phaseStatus": "FAILED", "contexts": []any{
			map[string]any{"statusCode": "COMMAND_EXECUTION_ERROR", "message": "Error while executing command: docker pull \"$SOURCE_IMAGE\". Reason: exit status 1"},
		}},
	}
	tests := []struct {
		name          string
		build         map[string]any // nil: not found
		code          string         // an API error instead
		wantDone      bool
		wantSucceeded bool
		wantMsg       string
		wantErr       bool
		wantRetryable bool
	}{
		{name: "succeeded", build: map[string]any{"buildStatus": "SUCCEEDED"}, wantDone: true, wantSucceeded: true, wantMsg: "succeeded"},
		{name: "in progress", build: map[string]any{"buildStatus": "IN_PROGRESS"}, wantDone: false},
		{name: "failed with reason", build: map[string]any{"buildStatus": "FAILED", "phases": failedPhases}, wantDone: true,
			wantMsg: "FAILED: phase BUILD FAILED: Error while executing command: docker pull"},
		{name: "fault", build: map[string]any{"buildStatus": "FAULT"}, wantDone: true, wantMsg: "FAULT"},
		{name: "stopped", build: map[string]any{"buildStatus": "STOPPED"}, wantDone: true, wantMsg: "STOPPED"},
		{name: "timed out", build: map[string]any{"buildStatus": "TIMED_OUT", "phases": []any{
			map[string]any{"phaseType": "BUILD", "phaseStatus": "TIMED_OUT"},
		}}, wantDone: true, wantMsg: "TIMED_OUT: phase BUILD TIMED_OUT"},
		{name: "not found", wantDone: true, wantMsg: "not found"},
		{name: "throttling", code: "ThrottlingException", wantErr: true, wantRetryable: true},
		{name: "access denied", code: "AccessDeniedException", wantErr: true},
	}
	const id = "orbit-image-replication:0007"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srv := newBackend(t, Options{})
			srv.Handle(targetGet, func(body map[string]any) (int, any) {
				if ids, _ := body["ids"].([]any); len(ids) != 1 || ids[0] != id {
					t.Errorf("BatchGetBuilds ids = %v, want [%s]", body["ids"], id)
				}
				if tt.code != "" {
					return awstest.Error(tt.code, "slow down")
				}
				if tt.build == nil {
					return http.StatusOK, map[string]any{"builds": []any{}, "buildsNotFound": []any{id}}
				}
				build := map[string]any{"id": id, "endTime": float64(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Unix())}
				for k, v := range tt.build {
					build[k] = v
				}
				return http.StatusOK, map[string]any{"builds": []any{build}}
			})
			st, err := b.Poll(t.Context(), id)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Poll = %+v, want an error", st)
				}
				if replicate.IsRetryable(err) != tt.wantRetryable {
					t.Errorf("IsRetryable(%v) = %v, want %v", err, !tt.wantRetryable, tt.wantRetryable)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.ID != id || st.Done != tt.wantDone || st.Succeeded != tt.wantSucceeded || !strings.Contains(st.Message, tt.wantMsg) {
				t.Errorf("Poll = %+v, want done %v succeeded %v message containing %q", st, tt.wantDone, tt.wantSucceeded, tt.wantMsg)
			}
		})
	}
}

func TestWaitPollsUntilDone(t *testing.T) {
	b, srv := newBackend(t, Options{})
	srv.Handle(targetStart, func(map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"build": map[string]any{"id": "p:9", "buildStatus": "IN_PROGRESS"}}
	})
	polls := 0
	srv.Handle(targetGet, func(map[string]any) (int, any) {
		polls++
		switch polls {
		case 1:
			return http.StatusOK, map[string]any{"builds": []any{map[string]any{"id": "p:9", "buildStatus": "IN_PROGRESS"}}}
		case 2:
			return awstest.Error("ThrottlingException", "Rate exceeded")
		}
		return http.StatusOK, map[string]any{"builds": []any{map[string]any{"id": "p:9", "buildStatus": "SUCCEEDED"}}}
	})
	st, err := replicate.Wait(t.Context(), b, replicate.Request{Source: "nginx:1.19", Destination: mirrorHost + "/orbit-dev/nginx:1.19"}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || !st.Succeeded || st.ID != "p:9" || polls != 3 {
		t.Errorf("Wait = %+v after %d polls, want p:9 succeeded after 3", st, polls)
	}
}

func TestNewValidates(t *testing.T) {
	_, srv := newBackend(t, Options{})
	client := awscodebuild.NewFromConfig(srv.Config())
	for _, opts := range []Options{{}, {Project: "p", TimeoutMinutes: 2}, {Project: "p", TimeoutMinutes: 3000}} {
		if _, err := New(client, opts); err == nil {
			t.Errorf("New(%+v) accepted", opts)
		}
	}
	if _, err := New(nil, Options{Project: "p"}); err == nil {
		t.Error("New accepted a nil client")
	}
}
