package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sysPath is the PATH for everything the testbed runs, in the machine and in the hosts.
const sysPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// baseEnv is the environment of commands in a host: what a root login would have, not
// the environment of the process that runs the testbed.
func baseEnv() []string {
	env := []string{"PATH=" + sysPath, "HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/sh", "LANG=C.UTF-8"}
	if t := os.Getenv("TERM"); t != "" {
		env = append(env, "TERM="+t)
	}
	return env
}

// lookPath finds a system binary even when the caller's PATH lacks the sbin directories.
func lookPath(name string) (string, error) { return lookPathIn(name, sysPath) }

// lookPathIn finds an executable regular file name in the directories of path.
func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (looked in %s)", name, path)
}

// run runs a machine command and returns its stdout; a failure carries stderr.
func run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	path, err := lookPath(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = baseEnv()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("running %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// procID names a process across pid reuse: its pid and its start time in clock ticks
// since boot.
type procID struct {
	Pid   int
	Start uint64
}

// statFields returns the fields of /proc/<pid>/stat after the command name: state is
// [0], start time is [19].
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return nil, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 20 {
		return nil, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	return f, nil
}

func readProcID(pid int) (procID, error) {
	f, err := statFields(pid)
	if err != nil {
		return procID{}, err
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procID{}, fmt.Errorf("parsing the start time of pid %d: %w", pid, err)
	}
	return procID{Pid: pid, Start: start}, nil
}

// alive reports whether the process still runs: same pid and start time, and not a zombie.
func (p procID) alive() bool {
	if p.Pid <= 0 {
		return false
	}
	f, err := statFields(p.Pid)
	if err != nil || f[0] == "Z" || f[0] == "X" {
		return false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return err == nil && start == p.Start
}

// kill sends sig to the process if it is still the one p names.
func (p procID) kill(sig syscall.Signal) error {
	if !p.alive() {
		return nil
	}
	if err := syscall.Kill(p.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sending %s to pid %d: %w", sig, p.Pid, err)
	}
	return nil
}

// waitGone waits until the process has exited (a zombie counts as gone: everything in its
// PID namespace is dead by then).
func (p procID) waitGone(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for p.alive() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("pid %d did not exit: %w", p.Pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (p procID) String() string { return fmt.Sprintf("%d %d\n", p.Pid, p.Start) }

func parseProcID(s string) (procID, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return procID{}, fmt.Errorf("malformed pid file content %q", s)
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return procID{}, fmt.Errorf("malformed pid file content %q", s)
	}
	return procID{Pid: pid, Start: start}, nil
}

// nsInode returns the inode of one of a process's namespaces ("net", "pid", "mnt").
func nsInode(pid int, ns string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, ns), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// processesIn lists the pids (in the machine's PID namespace) whose namespace ns is ino.
func processesIn(ns string, ino uint64) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if i, err := nsInode(pid, ns); err == nil && i == ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

// rssKiB returns a process's resident set size in KiB.
func rssKiB(pid int) int64 {
	return procKiB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
}

// procKiB reads the "<field> N kB" line of a /proc file, 0 if it is not there.
func procKiB(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// descendants returns pid and every process below it in the process tree.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := statFields(p); err == nil {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], p)
			}
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
