// Package awsconfig loads the AWS SDK configuration the replicator's
// CodeBuild and ECR clients share.
package awsconfig

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
)

// maxAttempts bounds the SDK's own retries of one call (throttling, 5xx,
// connection errors) before the error reaches the controller, whose work
// queue then backs off for longer.
const maxAttempts = 5

// Load reads credentials and settings the standard way (environment, EKS Pod
// Identity or IRSA web identity, shared config files). region overrides the
// environment's when set; it must end up known, since ECR and CodeBuild are
// regional.
func Load(ctx context.Context, region string) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = maxAttempts })
		}),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("load AWS configuration: no region (set AWS_REGION or pass one)")
	}
	return cfg, nil
}
