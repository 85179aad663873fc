// Package logging builds the zerolog logger every service uses and names the log keys once.
package logging

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
)

// Log keys, lowerCamelCase, defined once so every service spells them alike.
const (
	KeyNamespace   = "namespace"
	KeyName        = "name"
	KeyPod         = "pod"
	KeyPodSettings = "podSettings"
	KeyRelease     = "release"
	KeyImage       = "image"
	KeyKey         = "key"
	KeyTeam        = "team"
	KeyService     = "service"
	KeyPath        = "path"
	KeyDuration    = "duration"
)

// Format names accepted by --log-format.
const (
	FormatJSON    = "json"
	FormatConsole = "console"
)

// Options configure the logger. Verbosity (0–3) says how much of each resource a log line shows.
type Options struct {
	Level     string
	Format    string
	Verbosity int
}

// DefaultOptions are the defaults of SPEC §6.
func DefaultOptions() Options {
	return Options{Level: "info", Format: FormatJSON}
}

// BindFlags binds the logging flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", o.Level, "log level: trace, debug, info, warn, error")
	fs.StringVar(&o.Format, "log-format", o.Format, "log format: json or console")
	fs.IntVar(&o.Verbosity, "log-verbosity", o.Verbosity, "how much of each resource a log line shows (0-3)")
}

// Validate checks the options; the error names the flag at fault.
func (o Options) Validate() error {
	if _, err := zerolog.ParseLevel(strings.ToLower(o.Level)); err != nil || o.Level == "" {
		return fmt.Errorf("--log-level: unknown level %q (want trace, debug, info, warn or error)", o.Level)
	}
	switch o.Format {
	case FormatJSON, FormatConsole:
	default:
		return fmt.Errorf("--log-format: unknown format %q (want json or console)", o.Format)
	}
	if o.Verbosity < 0 || o.Verbosity > 3 {
		return fmt.Errorf("--log-verbosity: %d is out of range 0-3", o.Verbosity)
	}
	return nil
}

// New returns a logger writing to w. Options must have been validated.
func New(o Options, w io.Writer, service string) zerolog.Logger {
	level, err := zerolog.ParseLevel(strings.ToLower(o.Level))
	if err != nil {
		level = zerolog.InfoLevel
	}
	if o.Format == FormatConsole {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str(KeyService, service).Logger()
}
