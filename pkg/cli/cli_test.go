package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
)

type opts struct {
	Workers int
	Flag    bool
}

func (o *opts) BindFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.Workers, "workers", o.Workers, "workers")
	fs.BoolVar(&o.Flag, "replicate-external-repos", o.Flag, "a bool")
}

func (o *opts) Validate() error {
	if o.Workers < 1 {
		return fmt.Errorf("--workers: %d is out of range", o.Workers)
	}
	return nil
}

func command(o *opts, run func(ctx context.Context, rt *cli.Runtime) error) cli.Command {
	return cli.Command{
		Name: "svc", Version: "v1.2.3", Short: "test service", Options: o, Run: run,
		Env: []config.Binding{
			{Env: "SVC_WORKERS", Flag: "workers"},
			{Env: "SVC_EXTERNAL", Flag: "replicate-external-repos", Convert: config.BoolConvert},
		},
	}
}

func env(m map[string]string) config.LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExecuteConfiguration(t *testing.T) {
	cases := []struct {
		name        string
		args        []string
		env         map[string]string
		wantCode    int
		wantStdout  string
		wantStderr  string
		wantWorkers int
		wantFlag    bool
	}{
		{name: "help lists flags with defaults and env keys", args: []string{"--help"}, wantCode: 0, wantStdout: "--http-address string"},
		{name: "help shows env", args: []string{"--help"}, wantCode: 0, wantStdout: "SVC_WORKERS (--workers)"},
		{name: "version", args: []string{"--version"}, wantCode: 0, wantStdout: "svc v1.2.3"},
		{name: "unknown flag", args: []string{"--nope"}, wantCode: 2, wantStderr: "unknown flag: --nope"},
		{name: "bad env value names the key", env: map[string]string{"SVC_WORKERS": "many"}, wantCode: 2, wantStderr: "SVC_WORKERS: invalid value \"many\""},
		{name: "bad bool env names the key", env: map[string]string{"SVC_EXTERNAL": "maybe"}, wantCode: 2, wantStderr: "SVC_EXTERNAL:"},
		{name: "bad verbosity env", env: map[string]string{"ORBIT_CONTROLLER_LOG_VERBOSITY": "7"}, wantCode: 2, wantStderr: "ORBIT_CONTROLLER_LOG_VERBOSITY (--log-verbosity): 7 is out of range"},
		{name: "bad debug env", env: map[string]string{"ORBIT_CONTROLLER_DEBUG": "sure"}, wantCode: 2, wantStderr: "ORBIT_CONTROLLER_DEBUG:"},
		{name: "service validation", args: []string{"--workers=0"}, wantCode: 2, wantStderr: "--workers: 0 is out of range"},
		{name: "validation of an env value names the key", env: map[string]string{"SVC_WORKERS": "0"}, wantCode: 2, wantStderr: "SVC_WORKERS (--workers): 0 is out of range"},
		{name: "bad http address", args: []string{"--http-address=nope"}, wantCode: 2, wantStderr: "--http-address"},
		{name: "bad log level", args: []string{"--log-level=loud"}, wantCode: 2, wantStderr: "--log-level"},
		{name: "env applies", args: []string{"--http-address=127.0.0.1:0"}, env: map[string]string{"SVC_WORKERS": "7", "SVC_EXTERNAL": "yes"}, wantCode: 0, wantWorkers: 7, wantFlag: true},
		{name: "flag wins over env", args: []string{"--http-address=127.0.0.1:0", "--workers=3"}, env: map[string]string{"SVC_WORKERS": "7"}, wantCode: 0, wantWorkers: 3},
		{name: "bare bool flag", args: []string{"--http-address=127.0.0.1:0", "--replicate-external-repos"}, wantCode: 0, wantWorkers: 1, wantFlag: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := &opts{Workers: 1}
			var stdout, stderr bytes.Buffer
			cmd := command(o, func(context.Context, *cli.Runtime) error { return nil })
			code := cli.Execute(t.Context(), cmd, cli.IO{Args: tc.args, Env: env(tc.env), Stdout: &stdout, Stderr: &stderr})
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.wantStderr)
			}
			if tc.wantCode == 2 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("configuration error takes more than one line: %q", stderr.String())
			}
			if tc.wantWorkers != 0 && o.Workers != tc.wantWorkers {
				t.Errorf("workers %d, want %d", o.Workers, tc.wantWorkers)
			}
			if o.Flag != tc.wantFlag {
				t.Errorf("flag %v, want %v", o.Flag, tc.wantFlag)
			}
		})
	}
}

func TestServesOpsEndpointsAndStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	cmd := command(&opts{Workers: 1}, func(ctx context.Context, rt *cli.Runtime) error {
		rt.Health.AddReadiness("caches", func(context.Context) error {
			select {
			case <-ready:
				return nil
			default:
				return errors.New("not synced")
			}
		})
		<-ctx.Done()
		return nil
	})
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- cli.Execute(ctx, cmd, cli.IO{Args: []string{"--http-address=" + addr}, Stdout: io.Discard, Stderr: &stderr})
	}()
	get := func(path string) (int, string) {
		var resp *http.Response
		var err error
		for range 100 {
			if resp, err = http.Get("http://" + addr + path); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "not synced") {
		t.Errorf("/readyz before sync: %d %q", code, body)
	}
	close(ready)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz after sync: %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d", code)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancel: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop on cancel")
	}
}

func TestServiceErrorIsExitOne(t *testing.T) {
	cmd := command(&opts{Workers: 1}, func(context.Context, *cli.Runtime) error { return errors.New("broken") })
	var stderr bytes.Buffer
	code := cli.Execute(t.Context(), cmd, cli.IO{Args: []string{"--http-address=127.0.0.1:0"}, Stdout: io.Discard, Stderr: &stderr})
	if code != 1 || !strings.Contains(stderr.String(), "broken") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
