// Package s3store reads chart repositories kept in S3 buckets (the original platform kept user
// charts there) through aws-sdk-go-v2. The client is made on first use, so a cluster with no
// s3:// repository needs no AWS configuration.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/spf13/pflag"
)

// Options choose the S3 endpoint. Credentials and region come from the SDK's default chain
// (environment, shared files, IRSA web identity, instance metadata).
type Options struct {
	// EndpointURL overrides the S3 endpoint (an S3-compatible store, a test server). Empty
	// leaves it to the SDK, which also honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_S3.
	EndpointURL string
	// PathStyle addresses buckets as https://endpoint/bucket/key instead of as a subdomain.
	PathStyle bool
	// Region overrides the SDK's region; when neither is set, us-east-1.
	Region string
	// MaxObjectBytes caps what one Get reads.
	MaxObjectBytes int64
}

// DefaultOptions: the SDK's endpoint and region; objects up to 64 MiB.
func DefaultOptions() Options { return Options{MaxObjectBytes: 64 << 20} }

// BindFlags binds the S3 flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.EndpointURL, "s3-endpoint-url", o.EndpointURL, "S3 endpoint for s3:// chart repositories (default: the SDK's, which honours AWS_ENDPOINT_URL)")
	fs.BoolVar(&o.PathStyle, "s3-path-style", o.PathStyle, "address S3 buckets by path (S3-compatible stores) rather than by virtual host")
	fs.StringVar(&o.Region, "s3-region", o.Region, "AWS region of the chart buckets (default: the SDK's, else us-east-1)")
}

// Store reads objects from S3.
type Store struct {
	opts Options

	mu     sync.Mutex
	client *s3.Client
}

// New returns a store; nothing is read from the environment until the first call.
func New(opts Options) *Store { return &Store{opts: opts} }

func (s *Store) s3(ctx context.Context) (*s3.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	var load []func(*config.LoadOptions) error
	if s.opts.Region != "" {
		load = append(load, config.WithRegion(s.opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	s.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if s.opts.EndpointURL != "" {
			o.BaseEndpoint = aws.String(s.opts.EndpointURL)
		}
		o.UsePathStyle = o.UsePathStyle || s.opts.PathStyle
	})
	return s.client, nil
}

// Get reads one object; a missing one yields an error wrapping fs.ErrNotExist.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	c, err := s.s3(ctx)
	if err != nil {
		return nil, err
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("s3://%s/%s: %w", bucket, key, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("get s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	limit := s.opts.MaxObjectBytes
	if limit <= 0 {
		limit = DefaultOptions().MaxObjectBytes
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("s3://%s/%s is larger than %d bytes", bucket, key, limit)
	}
	return data, nil
}

// List returns every key under prefix.
func (s *Store) List(ctx context.Context, bucket, prefix string) ([]string, error) {
	c, err := s.s3(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

func notFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey") {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
