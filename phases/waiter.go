package phases

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/cri"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/manifests"
	"github.com/kforge/kforge/service"
)

// How long and how often HealthWaiter waits when Data and the waiter do not say.
const (
	// DefaultWait bounds every wait of the online phases.
	DefaultWait = 4 * time.Minute
	// DefaultPollInterval is how often the online phases look again at the cluster.
	DefaultPollInterval = time.Second
	// DefaultProbeInterval is how often the health endpoints are probed while the control
	// plane starts.
	DefaultProbeInterval = 250 * time.Millisecond
)

// Waiter waits for the cluster. A dry run swaps in one that waits for nothing.
type Waiter interface {
	// WaitControlPlane waits until every control-plane component reports healthy.
	WaitControlPlane(ctx context.Context, d *Data) error
	// WaitFor calls check until it returns nil, an error wrapping wait.ErrPermanent, or
	// d.Wait passes. what describes the condition: "Node cp1 to be registered".
	WaitFor(ctx context.Context, d *Data, what string, check func(context.Context) error) error
}

// HealthWaiter probes the components' health endpoints and polls conditions, for at most
// Data.Wait (DefaultWait when unset). Its zero value waits at the default intervals.
type HealthWaiter struct {
	// Interval is how often WaitFor checks its condition: DefaultPollInterval when zero.
	Interval time.Duration
	// ProbeInterval is how often WaitControlPlane probes the health endpoints:
	// DefaultProbeInterval when zero.
	ProbeInterval time.Duration
}

// DryRunWaiter reports what it would wait for.
type DryRunWaiter struct{}

// WaitFor implements Waiter: it polls.
func (w HealthWaiter) WaitFor(ctx context.Context, d *Data, _ string, check func(context.Context) error) error {
	return wait.Poll(ctx, cmp.Or(w.Interval, DefaultPollInterval), waitTimeout(d), check)
}

// waitTimeout is how long the waits of d's run last.
func waitTimeout(d *Data) time.Duration {
	if d.Wait <= 0 {
		return DefaultWait
	}
	return d.Wait
}

// WaitFor implements Waiter: it reports the condition and does not wait.
func (DryRunWaiter) WaitFor(_ context.Context, d *Data, what string, _ func(context.Context) error) error {
	d.Out.Plain("[dry-run] would wait for %s", what)
	return nil
}

// WaitControlPlane implements Waiter.
func (DryRunWaiter) WaitControlPlane(_ context.Context, d *Data) error {
	for _, c := range controlPlaneChecks(d) {
		d.Out.Say("would wait for %s: %s", c.component, c.url)
	}
	return nil
}

// WaitControlPlane implements Waiter: it polls every component until all answer ok, and on
// timeout names the unhealthy ones with the tail of their logs.
func (w HealthWaiter) WaitControlPlane(ctx context.Context, d *Data) error {
	verified, err := clusterCAClient(d)
	if err != nil {
		return err
	}
	clients := map[bool]*http.Client{
		false: verified,
		true:  {Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
	d.Out.Say("waiting up to %s for the kubelet to start the control plane from %s", d.Wait, d.ManifestsDir)
	start := time.Now()
	if err := w.waitRestarted(ctx, d); err != nil {
		return err
	}
	checks := controlPlaneChecks(d)
	last := map[string]string{}
	// The probes run under ctx, not the poll's deadline, so that the last round reports
	// what the components answered rather than the deadline cutting it short.
	err = wait.Poll(ctx, cmp.Or(w.ProbeInterval, DefaultProbeInterval), d.Wait, func(context.Context) error {
		ok := true
		for _, c := range checks {
			if _, done := last[c.url]; done && last[c.url] == "" {
				continue
			}
			last[c.url] = probe(ctx, clients[c.insecure], c.url)
			if last[c.url] != "" {
				ok = false
			}
		}
		if !ok {
			return errNotHealthy
		}
		return nil
	})
	if err == nil {
		d.Out.Say("all control-plane components are healthy after %s", time.Since(start).Round(100*time.Millisecond))
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the control plane did not become healthy within %s:\n", d.Wait)
	seen := map[string]bool{}
	for _, c := range checks {
		if last[c.url] == "" {
			continue
		}
		fmt.Fprintf(&b, "  %s: %s: %s\n", c.component, c.url, last[c.url])
		if !seen[c.component] {
			seen[c.component] = true
			b.WriteString(logTail(d, c.component))
		}
	}
	b.WriteString(kubeletLogHint(d))
	return fmt.Errorf("%s", strings.TrimRight(b.String(), "\n"))
}

// clusterCAClient is an HTTPS client for the health endpoints that verifies servers
// against the cluster CA in the certificate directory.
func clusterCAClient(d *Data) (*http.Client, error) {
	caPEM, err := readClusterCA(d)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// waitRestarted waits until the kubelet runs a container of every static pod this run
// rewrote (Data.Rewritten) that is newer than the manifest: until then, a health endpoint
// that answers is the old pod's.
func (w HealthWaiter) waitRestarted(ctx context.Context, d *Data) error {
	if len(d.Rewritten) == 0 {
		return nil
	}
	endpoint := d.Cluster.Kubelet.ContainerRuntimeEndpoint
	pending := maps.Clone(d.Rewritten)
	var lastErr error
	err := wait.Poll(ctx, cmp.Or(w.ProbeInterval, DefaultProbeInterval), waitTimeout(d), func(ctx context.Context) error {
		c, err := cri.Dial(endpoint)
		if err != nil {
			lastErr = err
			return err
		}
		defer c.Close()
		containers, err := c.Containers(ctx)
		if err != nil {
			lastErr = err
			return err
		}
		for component, since := range pending {
			if restartedSince(containers, component, d.Node.Name, since) {
				delete(pending, component)
			}
		}
		if len(pending) > 0 {
			lastErr = nil
			return errNotRestarted
		}
		return nil
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	names := slices.Sorted(maps.Keys(pending))
	var b strings.Builder
	fmt.Fprintf(&b, "the kubelet did not restart %s from the new manifests in %s within %s", strings.Join(names, ", "), d.ManifestsDir, waitTimeout(d))
	if lastErr != nil {
		fmt.Fprintf(&b, " (the container runtime at %s: %v)", endpoint, lastErr)
	}
	b.WriteString(":\n")
	for _, n := range names {
		b.WriteString(logTail(d, n))
	}
	b.WriteString(kubeletLogHint(d))
	return fmt.Errorf("%s", strings.TrimRight(b.String(), "\n"))
}

// restartedSince reports whether containers hold a running container of the static pod
// component on node that was created at or after since.
func restartedSince(containers []cri.Container, component, node string, since time.Time) bool {
	for _, c := range containers {
		if c.Running && c.Name == component && c.PodNamespace == "kube-system" && c.PodName == component+"-"+node && !c.Created.Before(since) {
			return true
		}
	}
	return false
}

var errNotRestarted = errors.New("a rewritten static pod has not restarted yet")

// probe returns "" when url answers 200 "ok", else what went wrong.
func probe(ctx context.Context, c *http.Client, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return ""
}

// errNotHealthy is what WaitControlPlane's poll sees while a component is unhealthy; the
// error it returns names them.
var errNotHealthy = errors.New("not every control-plane component is healthy")

// logTail returns the last lines of a static pod's newest container log, indented.
func logTail(d *Data, component string) string {
	pattern := d.Path(filepath.Join("/var/log/pods", "kube-system_"+component+"-"+d.Node.Name+"_*", component, "*.log"))
	files, _ := filepath.Glob(pattern)
	if len(files) == 0 {
		return fmt.Sprintf("    (no container log for %s yet: the kubelet has not started it; check the kubelet and the image %s)\n",
			component, imageOf(d, component))
	}
	sort.Slice(files, func(i, j int) bool {
		a, _ := os.Stat(files[i])
		b, _ := os.Stat(files[j])
		return a.ModTime().Before(b.ModTime())
	})
	return "    last lines of " + files[len(files)-1] + ":\n" + tail(files[len(files)-1], 15, "      ")
}

func imageOf(d *Data, component string) string {
	switch component {
	case manifests.NameAPIServer:
		return d.Cluster.Image(config.ImageAPIServer)
	case manifests.NameControllerManager:
		return d.Cluster.Image(config.ImageControllerManager)
	case manifests.NameScheduler:
		return d.Cluster.Image(config.ImageScheduler)
	}
	return d.Cluster.Image(config.ImageEtcd)
}

func kubeletLogHint(d *Data) string {
	if sup, ok := d.Services.(*service.Supervisor); ok {
		return "  kubelet log (last lines of " + sup.LogFile("kubelet") + "):\n" + tail(d.Path(sup.LogFile("kubelet")), 10, "    ")
	}
	return "  the kubelet's log: journalctl -u kubelet\n"
}

// tail returns the last n lines of a file, each prefixed with indent.
func tail(path string, n int, indent string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return indent + "(" + err.Error() + ")\n"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var out strings.Builder
	for _, l := range lines {
		if len(l) > 300 {
			l = l[:300] + "..."
		}
		out.WriteString(indent + l + "\n")
	}
	return out.String()
}
