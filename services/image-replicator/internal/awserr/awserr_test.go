package awserr

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

func TestClassify(t *testing.T) {
	api := func(code string) error {
		return fmt.Errorf("operation error: %w", &smithy.GenericAPIError{Code: code, Message: "m"})
	}
	tests := []struct {
		err  error
		want bool
	}{
		{api("ThrottlingException"), true},
		{api("Throttling"), true},
		{api("TooManyRequestsException"), true},
		{api("RequestTimeoutException"), true},
		{api("AccountLimitExceededException"), true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{api("AccessDeniedException"), false},
		{api("InvalidInputException"), false},
		{errors.New("plain"), false},
	}
	for _, tt := range tests {
		got := Classify(tt.err)
		if replicate.IsRetryable(got) != tt.want {
			t.Errorf("Classify(%v) retryable = %v, want %v", tt.err, !tt.want, tt.want)
		}
		if !errors.Is(got, tt.err) {
			t.Errorf("Classify(%v) lost the error", tt.err)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
	if Code(api("X")) != "X" || Code(errors.New("y")) != "" {
		t.Error("Code")
	}
}
