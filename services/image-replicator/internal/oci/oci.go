// Package oci holds the registry-generic pieces of the replicator: the mirror
// check for any OCI distribution registry (one manifest HEAD) and source
// registry credentials read from a Docker config JSON.
package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Checker asks a registry whether it holds one manifest.
type Checker struct {
	nameOpts   []name.Option
	remoteOpts []remote.Option
}

// NewChecker returns a Checker; pass remote.WithTransport,
// remote.WithAuthFromKeychain and the like in opts. insecure allows plain HTTP
// to registries other than localhost (which go-containerregistry already
// reaches over HTTP).
func NewChecker(insecure bool, opts ...remote.Option) *Checker {
	c := &Checker{remoteOpts: opts}
	if insecure {
		c.nameOpts = append(c.nameOpts, name.Insecure)
	}
	return c
}

// Has sends one manifest HEAD for ref: 200 means present, 404 absent, and
// anything else (401, 403, 5xx, network) is an error, since it says nothing
// about the image.
func (c *Checker) Has(ctx context.Context, ref string) (bool, error) {
	parsed, err := name.ParseReference(ref, c.nameOpts...)
	if err != nil {
		return false, fmt.Errorf("head manifest %s: %w", ref, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx)}, c.remoteOpts...)
	if _, err := remote.Head(parsed, opts...); err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return false, nil
		}
		return false, fmt.Errorf("head manifest %s: %w", ref, err)
	}
	return true, nil
}

// dockerConfig is ~/.docker/config.json and a kubernetes.io/dockerconfigjson
// Secret's .dockerconfigjson; the legacy .dockercfg is the auths map alone.
type dockerConfig struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

// DockerConfigKeychain is an authn.Keychain over the credentials of one
// Docker config JSON. Credential helpers and credsStore are ignored: a
// controller has no helper binaries to run.
type DockerConfigKeychain struct {
	auths map[string]authn.AuthConfig
}

// NewDockerConfigKeychain parses data, either the "auths" form
// (.dockerconfigjson) or the bare legacy form (.dockercfg). Empty data gives
// a keychain with no credentials.
func NewDockerConfigKeychain(data []byte) (*DockerConfigKeychain, error) {
	k := &DockerConfigKeychain{auths: map[string]authn.AuthConfig{}}
	if len(strings.TrimSpace(string(data))) == 0 {
		return k, nil
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("parse docker config: %w", err)
	}
	auths := map[string]authn.AuthConfig{}
	if _, ok := probe["auths"]; ok {
		var cfg dockerConfig
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("parse docker config: %w", err)
		}
		auths = cfg.Auths
	} else if err := json.Unmarshal(data, &auths); err != nil {
		return nil, fmt.Errorf("parse legacy docker config: %w", err)
	}
	for key, ac := range auths {
		host, err := normaliseRegistryKey(key)
		if err != nil {
			return nil, fmt.Errorf("parse docker config: registry %q: %w", key, err)
		}
		k.auths[host] = ac
	}
	return k, nil
}

// normaliseRegistryKey turns the forms found in docker configs
// ("https://index.docker.io/v1/", "quay.io", "http://host:5000") into the
// registry name go-containerregistry reports for a reference.
func normaliseRegistryKey(key string) (string, error) {
	host := key
	if strings.Contains(key, "://") {
		u, err := url.Parse(key)
		if err != nil {
			return "", err
		}
		host = u.Host
	} else if h, _, ok := strings.Cut(key, "/"); ok {
		host = h
	}
	host = strings.ToLower(host)
	switch host {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return name.DefaultRegistry, nil
	case "":
		return "", errors.New("no host")
	}
	return host, nil
}

// Resolve implements authn.Keychain; an unknown registry gets authn.Anonymous.
func (k *DockerConfigKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	ac, ok := k.auths[strings.ToLower(res.RegistryStr())]
	if !ok || ac == (authn.AuthConfig{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(ac), nil
}
