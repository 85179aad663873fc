package certs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/kube"
	"github.com/orbit-workbench/orbit-controller/pkg/logging"
)

// SetupSubcommand is the `setup` entry point of a webhook binary: issue the serving
// certificate, store it and inject the CA bundle once, then exit — for operators who prefer
// the original's setup Job to certificates managed by the running webhook.
func SetupSubcommand(binary string, defaults Options) cli.Subcommand {
	return cli.Subcommand{
		Short: "issue the serving certificate, store it and inject the CA bundle once, then exit",
		Run: func(ctx context.Context, args []string, _, stderr io.Writer) error {
			common := cli.DefaultCommon()
			opts := defaults
			timeout := 5 * time.Minute
			fs := pflag.NewFlagSet(binary+" setup", pflag.ContinueOnError)
			fs.SetOutput(stderr)
			common.Kube.BindFlags(fs)
			common.Logging.BindFlags(fs)
			fs.StringVar(&common.Namespace, "namespace", common.Namespace, "namespace of the certificate Secret")
			fs.DurationVar(&timeout, "timeout", timeout, "give up after this long")
			opts.BindFlags(fs)
			if err := fs.Parse(args); err != nil {
				if errors.Is(err, pflag.ErrHelp) {
					return nil
				}
				return err
			}
			if opts.Mode == ModeFiles {
				return errors.New("--cert-mode=files: nothing to set up (cert-manager or a mounted Secret provides the certificate)")
			}
			if err := common.Logging.Validate(); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			cfg, err := common.Kube.RESTConfig()
			if err != nil {
				return err
			}
			client, err := kube.Clientset(cfg)
			if err != nil {
				return err
			}
			m, err := NewManager(client, common.Namespace, opts, nil)
			if err != nil {
				return err
			}
			log := logging.New(common.Logging, os.Stderr, binary)
			ctx, cancel := context.WithTimeout(log.WithContext(ctx), timeout)
			defer cancel()
			if err := m.Setup(ctx); err != nil {
				return fmt.Errorf("set up certificate %s/%s: %w", common.Namespace, opts.Secret, err)
			}
			log.Info().Str("secret", common.Namespace+"/"+opts.Secret).Str("webhookConfig", opts.WebhookConfig).Msg("certificate set up")
			return nil
		},
	}
}
