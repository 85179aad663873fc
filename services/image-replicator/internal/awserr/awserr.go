// Package awserr classifies AWS API errors for the replicator's backends.
package awserr

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

// accountLimitExceeded is CodeBuild's concurrent-build limit: it clears by
// itself, but the SDK does not count it as throttling.
const accountLimitExceeded = "AccountLimitExceededException"

// Code returns the API error code of err, or "" when err is no API error.
func Code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// Classify marks throttling, request timeouts and connection errors as
// retryable (see replicate.IsRetryable) and returns other errors as they are.
func Classify(err error) error {
	if err == nil || replicate.IsRetryable(err) {
		return err
	}
	code := Code(err)
	_, throttle := retry.DefaultThrottleErrorCodes[code]
	_, timeout := retry.DefaultRetryableErrorCodes[code]
	conn := retry.RetryableConnectionError{}
	if throttle || timeout || code == accountLimitExceeded || conn.IsErrorRetryable(err) == aws.TrueTernary {
		return replicate.Retryable(err)
	}
	return err
}
