// Command testbedctl creates, inspects and removes kforge's test hosts on this machine
// (see package e2e/testbed):
//
//	go run ./e2e/testbedctl up -n 3      # hosts h1..h3, or keep the ones that run
//	go run ./e2e/testbedctl status       # hosts, services, memory
//	go run ./e2e/testbedctl exec h1 -- crictl ps
//	go run ./e2e/testbedctl ssh h2       # log in over SSH as kforge would
//	go run ./e2e/testbedctl down         # remove every trace
//	go run ./e2e/testbedctl prereqs      # install the Debian packages the machine needs
//	go run ./e2e/testbedctl cluster      # bundle, hosts and kforge up: what make cluster runs
//
// It needs root.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kforge/kforge/e2e/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "testbedctl:", err)
		os.Exit(1)
	}
}

type globalOptions struct {
	stateDir string
	verbose  bool
	out      io.Writer
	errOut   io.Writer
}

func (g *globalOptions) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.errOut, &slog.HandlerOptions{Level: level}))
}

func (g *globalOptions) load() (*testbed.Testbed, error) {
	t, err := testbed.Load(g.stateDir)
	if err != nil {
		return nil, err
	}
	t.Out, t.Logger = g.out, g.logger()
	return t, nil
}

func (g *globalOptions) host(name string) (*testbed.Testbed, testbed.Host, error) {
	t, err := g.load()
	if err != nil {
		return nil, testbed.Host{}, err
	}
	h, ok := t.Host(name)
	if !ok {
		var names []string
		for _, h := range t.Hosts() {
			names = append(names, h.Name)
		}
		return nil, testbed.Host{}, fmt.Errorf("no host %q in the testbed (hosts: %s)", name, strings.Join(names, ", "))
	}
	return t, h, nil
}

func newRoot(out, errOut io.Writer) *cobra.Command {
	g := &globalOptions{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "testbedctl",
		Short:         "Create, inspect and remove kforge's test hosts on this machine (needs root)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", testbed.DefaultStateDir, "where the testbed keeps its state")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log diagnostics to stderr")
	root.AddCommand(newUp(g), newDown(g), newStatus(g), newExec(g), newSSH(g), newAdd(g),
		newPower(g, "poweroff"), newPower(g, "poweron"), newService(g), newCluster(g), newPrereqs(g))
	return root
}

func newUp(g *globalOptions) *cobra.Command {
	var opts testbed.Options
	var kind string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create hosts h1..hN (keeping those that run), install missing Debian packages",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := testbed.ParseKind(kind)
			if err != nil {
				return err
			}
			opts.Kind = k
			opts.StateDir, opts.Out, opts.Logger = g.stateDir, g.out, g.logger()
			start := time.Now()
			t, err := testbed.Up(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "[testbed] %d hosts ready in %s\n\n", len(t.Hosts()), time.Since(start).Round(time.Millisecond))
			printHosts(g.out, t)
			return nil
		},
	}
	cmd.Flags().IntVarP(&opts.Hosts, "hosts", "n", 3, "number of hosts h1..hN")
	cmd.Flags().StringVar(&opts.Subnet, "subnet", testbed.DefaultSubnet, "the hosts' network (a new testbed only)")
	cmd.Flags().StringVar(&kind, "kind", string(testbed.KindNS), `what new hosts are made of: "ns" (namespaces over the machine's root) or "systemd" (a private Debian root booting systemd under systemd-nspawn)`)
	return cmd
}

func printHosts(w io.Writer, t *testbed.Testbed) {
	for _, h := range t.Hosts() {
		fmt.Fprintf(w, "%s\t%s\t%s\n", h.Name, h.Address, h.Kind())
		fmt.Fprintf(w, "  enter: %s\n", h.EnterCommand())
		fmt.Fprintf(w, "  ssh:   %s\n", h.SSHCommand())
	}
	fmt.Fprintf(w, "\nSSH key %s, known_hosts %s, state and logs in %s\n", t.SSHKey(), t.KnownHosts(), t.Dir())
}

func newDown(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove every host and every trace of the testbed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			if err := testbed.Down(cmd.Context(), g.stateDir); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "[testbed] down in %s\n", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
}

type hostReport struct {
	Name     string                  `json:"name"`
	Address  string                  `json:"address"`
	Power    string                  `json:"power"`
	InitPID  int                     `json:"initPID,omitempty"`
	Services []testbed.ServiceStatus `json:"services,omitempty"`
	Usage    *testbed.Usage          `json:"usage,omitempty"`
	Enter    string                  `json:"enter,omitempty"`
	SSH      string                  `json:"ssh"`
}

func newStatus(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the hosts, their services and memory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := g.load()
			if errors.Is(err, testbed.ErrNoTestbed) && output != "json" {
				fmt.Fprintln(g.out, err)
				return nil
			}
			if err != nil {
				return err
			}
			var reports []hostReport
			for _, h := range t.Hosts() {
				r := hostReport{Name: h.Name, Address: h.Address.String(), Power: "off", SSH: h.SSHCommand()}
				if pid, err := h.InitPID(); err == nil {
					r.Power, r.InitPID, r.Enter = "on", pid, h.EnterCommand()
					r.Services, _ = h.Services()
					if u, err := h.Usage(); err == nil {
						r.Usage = &u
					}
				}
				reports = append(reports, r)
			}
			if output == "json" {
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				return enc.Encode(reports)
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tADDRESS\tPOWER\tINIT PID\tSERVICES\tPROCESSES\tMEMORY (PSS/RSS)")
			for _, r := range reports {
				var svcs []string
				for _, s := range r.Services {
					d := s.Name + ":" + s.State
					if s.Restarts > 0 {
						d += fmt.Sprintf("(%d restarts)", s.Restarts)
					}
					svcs = append(svcs, d)
				}
				mem, procs := "-", "-"
				if r.Usage != nil {
					mem = fmt.Sprintf("%.1f/%.1f MiB", float64(r.Usage.PSSKiB)/1024, float64(r.Usage.RSSKiB)/1024)
					procs = fmt.Sprint(r.Usage.Processes)
				}
				pid := "-"
				if r.InitPID > 0 {
					pid = fmt.Sprint(r.InitPID)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Address, r.Power, pid, strings.Join(svcs, " "), procs, mem)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func newExec(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "exec HOST -- COMMAND [ARG...]",
		Short: "Run a command inside a host (through nsenter on its PID 1); with no command, a shell",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, h, err := g.host(args[0])
			if err != nil {
				return err
			}
			command := args[1:]
			if len(command) == 0 {
				command = []string{"bash", "-l"}
			}
			argv, err := h.EnterArgv(command...)
			if err != nil {
				return err
			}
			// Replace this process, so that the terminal, signals and the exit status are
			// the command's own.
			return syscall.Exec(argv[0], argv, testbed.HostEnv())
		},
	}
}

func newSSH(g *globalOptions) *cobra.Command {
	var print bool
	cmd := &cobra.Command{
		Use:   "ssh HOST [-- COMMAND...]",
		Short: "Log in to a host over SSH with the testbed's key and known_hosts",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, h, err := g.host(args[0])
			if err != nil {
				return err
			}
			argv := h.SSHArgv(args[1:]...)
			if print {
				fmt.Fprintln(g.out, strings.Join(argv, " "))
				return nil
			}
			path, err := exec.LookPath("ssh")
			if err != nil {
				return err
			}
			return syscall.Exec(path, argv, os.Environ())
		},
	}
	cmd.Flags().BoolVar(&print, "print", false, "print the ssh command line instead of running it")
	return cmd
}

func newAdd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "add NAME",
		Short: "Add one host with a name of your choice",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.load()
			if err != nil {
				return err
			}
			if _, err := t.Add(cmd.Context(), args[0]); err != nil {
				return err
			}
			printHosts(g.out, t)
			return nil
		},
	}
}

func newPower(g *globalOptions, verb string) *cobra.Command {
	short := "Cut a host's power: kill its PID 1 and everything in it"
	if verb == "poweron" {
		short = "Boot a powered-off host with the files it had"
	}
	return &cobra.Command{
		Use:   verb + " HOST",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, h, err := g.host(args[0])
			if err != nil {
				return err
			}
			if verb == "poweron" {
				err = h.PowerOn(cmd.Context())
			} else {
				err = h.PowerOff(cmd.Context())
			}
			if err == nil {
				fmt.Fprintf(g.out, "[testbed] %s: %s done\n", h.Name, verb)
			}
			return err
		},
	}
}

func newService(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "service HOST stop|start sshd|containerd",
		Short: "Stop or start a host's sshd or containerd",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, h, err := g.host(args[0])
			if err != nil {
				return err
			}
			switch args[1] {
			case "stop":
				err = h.StopService(cmd.Context(), args[2])
			case "start":
				err = h.StartService(cmd.Context(), args[2])
			default:
				return fmt.Errorf("want stop or start, not %q", args[1])
			}
			if err == nil {
				fmt.Fprintf(g.out, "[testbed] %s: %s %s done\n", h.Name, args[1], args[2])
			}
			return err
		},
	}
}
