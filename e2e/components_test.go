//go:build integration

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kforge/kforge/e2e/bundle"
)

// requireFreePorts fails the test at once if any of the loopback ports is taken: a
// component that cannot bind would fail later with a far less clear message, or the test
// would talk to someone else's cluster.
func requireFreePorts(t *testing.T, ports ...int) {
	t.Helper()
	var busy []string
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			busy = append(busy, fmt.Sprintf("%d (%v)", p, err))
			continue
		}
		l.Close()
	}
	if len(busy) > 0 {
		t.Fatalf("the integration test needs these ports free on 127.0.0.1, but they are in use: %s\n"+
			"Stop whatever listens there (`ss -ltnp` shows it; often a leftover etcd or kube-apiserver from an interrupted run) and run again.",
			strings.Join(busy, ", "))
	}
}

// readStaticPod decodes a static pod manifest strictly: an unknown field is an error.
func readStaticPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		dir, _ := os.ReadDir(filepath.Dir(path))
		var names []string
		for _, e := range dir {
			names = append(names, e.Name())
		}
		t.Fatalf("reading static pod manifest: %v (the directory holds %v)", err, names)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatalf("decoding %s as a Pod: %v\n%s", path, err, data)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s has %d containers, want 1", path, len(pod.Spec.Containers))
	}
	return &pod
}

// component is a control-plane binary run as a plain process from a static pod's command.
type component struct {
	name    string
	argv    []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited and been reaped
	err     error         // the exit status, set before done is closed
}

// componentFromPod maps the pod's command line to the bundle: command[0]'s base name
// must be one of the bundle's binaries, and the rest of command and args are passed as
// written (kforge writes host paths into them).
func componentFromPod(t *testing.T, b *bundle.Bundle, pod *corev1.Pod, logDir string) *component {
	t.Helper()
	c := pod.Spec.Containers[0]
	argv := append(slices.Clone(c.Command), c.Args...)
	if len(argv) == 0 {
		t.Fatalf("static pod %s has no command", pod.Name)
	}
	bin := filepath.Base(argv[0])
	if !slices.Contains(bundle.KubernetesBinaries, bin) && !slices.Contains(bundle.EtcdBinaries, bin) {
		t.Fatalf("static pod %s runs %q, which is not a bundle binary", pod.Name, argv[0])
	}
	argv[0] = b.Path(bin)
	return &component{name: pod.Name, argv: argv, logPath: filepath.Join(logDir, pod.Name+".log")}
}

// components are the processes a test started; stop ends exactly those, newest first.
type components struct {
	list []*component
}

// start runs c in its own process group with output to its log file. The test's cleanup
// stops it.
func (cs *components) start(t *testing.T, c *component, env []corev1.EnvVar) {
	t.Helper()
	f, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	c.cmd = exec.Command(c.argv[0], c.argv[1:]...)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	c.cmd.Env = os.Environ()
	for _, e := range env {
		if e.ValueFrom == nil {
			c.cmd.Env = append(c.cmd.Env, e.Name+"="+e.Value)
		}
	}
	c.cmd.SysProcAttr = componentProcAttr()
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", c.name, err)
	}
	c.done = make(chan struct{})
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	cs.list = append(cs.list, c)
	t.Logf("started %s (pid %d): %s", c.name, c.cmd.Process.Pid, strings.Join(c.argv, " "))
}

// exited returns the first component that is no longer running, or nil.
func (cs *components) exited() *component {
	for _, c := range cs.list {
		select {
		case <-c.done:
			return c
		default:
		}
	}
	return nil
}

// stop sends SIGTERM to each started PID, newest first, and SIGKILL to any that has not
// exited 15 seconds later. It signals nothing but the PIDs it started.
func (cs *components) stop(t *testing.T) {
	for _, c := range slices.Backward(cs.list) {
		select {
		case <-c.done:
			t.Logf("%s had already exited: %v", c.name, c.err)
			continue
		default:
		}
		pid := c.cmd.Process.Pid
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("stopping %s (pid %d): %v", c.name, pid, err)
		}
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			t.Logf("%s (pid %d) ignored SIGTERM for 15s; killing it", c.name, pid)
			c.cmd.Process.Kill()
			<-c.done
		}
	}
}

// dumpLogs prints the end of every component's log.
func (cs *components) dumpLogs(t *testing.T) {
	for _, c := range cs.list {
		t.Logf("---- last lines of %s (%s) ----\n%s", c.name, c.logPath, tail(c.logPath, 40))
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
