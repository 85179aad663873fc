// Package cli is the common shell of every orbit-controller binary: flags and environment
// (SPEC §6), validation with one clear line, logging, the plain-HTTP listener for /metrics,
// /healthz and /readyz, and a graceful stop on SIGTERM or SIGINT. A service supplies its own
// options and a run function; main stays a few lines.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/pkg/health"
	"github.com/orbit-workbench/orbit-controller/pkg/kube"
	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
)

// Common are the flags every binary has (SPEC §6).
type Common struct {
	Kube        kube.Options
	Logging     logging.Options
	Namespace   string
	HTTPAddress string
	// ShutdownTimeout bounds the graceful stop.
	ShutdownTimeout time.Duration
}

// DefaultCommon returns the defaults of SPEC §6.
func DefaultCommon() Common {
	return Common{
		Kube:            kube.DefaultOptions(),
		Logging:         logging.DefaultOptions(),
		Namespace:       "orbit-system",
		HTTPAddress:     ":8080",
		ShutdownTimeout: 20 * time.Second,
	}
}

// BindFlags binds the common flags.
func (c *Common) BindFlags(fs *pflag.FlagSet) {
	c.Kube.BindFlags(fs)
	c.Logging.BindFlags(fs)
	fs.StringVar(&c.Namespace, "namespace", c.Namespace,
		"namespace of the controller's own objects (state ConfigMap, Lease, ImageReplications, certificate Secret)")
	fs.StringVar(&c.HTTPAddress, "http-address", c.HTTPAddress, "plain-HTTP listener for /metrics, /healthz and /readyz")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful stop may take")
}

// Validate checks the common flags.
func (c Common) Validate() error {
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if err := c.Kube.Validate(); err != nil {
		return err
	}
	if c.Namespace == "" {
		return errors.New("--namespace: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddress); err != nil {
		return fmt.Errorf("--http-address: %q is not host:port: %w", c.HTTPAddress, err)
	}
	return nil
}

// commonEnv are the environment keys every service reads.
var commonEnv = []config.Binding{
	{Env: "ORBIT_CONTROLLER_DEBUG", Flag: "log-level", Convert: config.DebugConvert},
	{Env: "ORBIT_CONTROLLER_LOG_VERBOSITY", Flag: "log-verbosity"},
	{Env: "ORBIT_CONTROLLER_NAMESPACE", Flag: "namespace"},
}

// Options is what a service adds to the common flags.
type Options interface {
	BindFlags(fs *pflag.FlagSet)
	Validate() error
}

// Runtime is what a running service gets from the shell.
type Runtime struct {
	Common   Common
	Log      zerolog.Logger
	Registry *prometheus.Registry
	Health   *health.Checks
	// RESTConfig loads the cluster configuration on first use, so --help and validation never
	// need a cluster.
	RESTConfig func() (*rest.Config, error)
	Stdout     io.Writer
}

// Command describes one binary.
type Command struct {
	Name    string
	Version string
	Short   string
	Options Options
	// Env binds the service's own environment keys to its flags.
	Env []config.Binding
	// Run runs the service until ctx ends; its error becomes the exit status.
	Run func(ctx context.Context, rt *Runtime) error
	// Subcommands run instead of the service (e.g. `preview`, `setup`); each gets the args
	// after its name and parses its own flags.
	Subcommands map[string]Subcommand
}

// Subcommand is a secondary entry point of a binary.
type Subcommand struct {
	Short string
	Run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// IO is what Execute reads and writes; os in main, buffers in tests.
type IO struct {
	Args   []string
	Env    config.LookupEnv
	Stdout io.Writer
	Stderr io.Writer
}

// Main runs cmd with the process's arguments and environment, stopping on SIGTERM or SIGINT,
// and exits with its status.
func Main(cmd Command) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := Execute(ctx, cmd, IO{Args: os.Args[1:], Env: os.LookupEnv, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// Execute parses flags and environment, validates, and runs the command. It returns the exit
// status: 0 on success (and for --help/--version), 1 when the service failed, 2 for bad
// configuration — always with one line on stderr naming what is wrong.
func Execute(ctx context.Context, cmd Command, io IO) int {
	if len(io.Args) > 0 {
		if sub, ok := cmd.Subcommands[io.Args[0]]; ok {
			if err := sub.Run(ctx, io.Args[1:], io.Stdout, io.Stderr); err != nil {
				fmt.Fprintf(io.Stderr, "%s %s: %v\n", cmd.Name, io.Args[0], err)
				return 1
			}
			return 0
		}
	}
	common := DefaultCommon()
	fs := pflag.NewFlagSet(cmd.Name, pflag.ContinueOnError)
	fs.SetOutput(io.Stderr)
	common.BindFlags(fs)
	if cmd.Options != nil {
		cmd.Options.BindFlags(fs)
	}
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { usage(io.Stdout, cmd, fs) }
	fs.SetOutput(io.Stdout)
	if err := fs.Parse(io.Args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(io.Stderr, "%s: %v\n", cmd.Name, err)
		return 2
	}
	if *showVersion {
		fmt.Fprintf(io.Stdout, "%s %s\n", cmd.Name, cmd.Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.Stderr, "%s: unexpected argument %q\n", cmd.Name, fs.Arg(0))
		return 2
	}
	lookup := io.Env
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	fromEnv, err := config.Apply(fs, lookup, append(append([]config.Binding{}, commonEnv...), cmd.Env...))
	if err != nil {
		fmt.Fprintf(io.Stderr, "%s: invalid configuration: %v\n", cmd.Name, err)
		return 2
	}
	if err := common.Validate(); err != nil {
		fmt.Fprintf(io.Stderr, "%s: invalid configuration: %v\n", cmd.Name, config.NameSource(err, fromEnv))
		return 2
	}
	if cmd.Options != nil {
		if err := cmd.Options.Validate(); err != nil {
			fmt.Fprintf(io.Stderr, "%s: invalid configuration: %v\n", cmd.Name, config.NameSource(err, fromEnv))
			return 2
		}
	}
	log := logging.New(common.Logging, io.Stderr, cmd.Name)
	rt := &Runtime{
		Common:     common,
		Log:        log,
		Registry:   metrics.NewRegistry(),
		Health:     health.NewChecks(),
		RESTConfig: func() (*rest.Config, error) { return common.Kube.RESTConfig() },
		Stdout:     io.Stdout,
	}
	ctx = log.WithContext(ctx)
	if err := serve(ctx, cmd, rt); err != nil {
		log.Error().Err(err).Msg("stopped with an error")
		return 1
	}
	log.Info().Msg("stopped")
	return 0
}

// serve runs the ops listener beside the service and stops both when either ends.
func serve(ctx context.Context, cmd Command, rt *Runtime) error {
	ln, err := net.Listen("tcp", rt.Common.HTTPAddress)
	if err != nil {
		return fmt.Errorf("listen on --http-address %s: %w", rt.Common.HTTPAddress, err)
	}
	srv := &http.Server{Handler: OpsHandler(rt), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	rt.Log.Info().Str("httpAddress", ln.Addr().String()).Str("version", cmd.Version).Msg("started")

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		if cmd.Run == nil {
			<-runCtx.Done()
			runErr <- nil
			return
		}
		runErr <- cmd.Run(runCtx, rt)
	}()

	var result error
	select {
	case result = <-runErr:
		cancel()
	case err := <-serveErr:
		cancel()
		result = fmt.Errorf("serve %s: %w", rt.Common.HTTPAddress, err)
		if err := <-runErr; err != nil {
			result = errors.Join(result, err)
		}
	}
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), rt.Common.ShutdownTimeout)
	defer done()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		result = errors.Join(result, fmt.Errorf("shut down ops listener: %w", err))
	}
	return result
}

// OpsHandler serves /metrics, /healthz, /readyz (and /livez as an alias).
func OpsHandler(rt *Runtime) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(rt.Registry))
	mux.Handle("/healthz", rt.Health.LivenessHandler())
	mux.Handle("/livez", rt.Health.LivenessHandler())
	mux.Handle("/readyz", rt.Health.ReadinessHandler())
	return mux
}

func usage(w io.Writer, cmd Command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s — %s\n\nUsage:\n  %s [flags]\n", cmd.Name, cmd.Short, cmd.Name)
	if len(cmd.Subcommands) > 0 {
		names := make([]string, 0, len(cmd.Subcommands))
		for name := range cmd.Subcommands {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(w, "  %s %s [flags]   %s\n", cmd.Name, name, cmd.Subcommands[name].Short)
		}
	}
	fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	keys := config.EnvKeys(append(append([]config.Binding{}, commonEnv...), cmd.Env...))
	fmt.Fprintf(w, "\nEnvironment (flags win):\n  %s\n", strings.Join(keys, "\n  "))
}
