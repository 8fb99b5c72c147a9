package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
)

// StaticPods reads the control-plane static pods through the admin client: their mirror
// pods in kube-system (label tier=control-plane), by node and component. Nil without a
// cluster.
func (f *Fleet) StaticPods(ctx context.Context) (StaticPods, error) {
	f.mu.Lock()
	cs := f.cs
	f.mu.Unlock()
	if cs == nil {
		return nil, nil
	}
	list, err := cs.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "tier=control-plane"})
	if err != nil {
		return nil, fmt.Errorf("listing the control-plane pods: %w", err)
	}
	out := StaticPods{}
	for i := range list.Items {
		p := &list.Items[i]
		if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; !mirror {
			continue
		}
		if out[p.Spec.NodeName] == nil {
			out[p.Spec.NodeName] = map[string]bool{}
		}
		out[p.Spec.NodeName][p.Labels["component"]] = podReady(p)
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// HostFacts asks every reachable host that is in the cluster, at once, what status
// reports of it: whether its kforge is this build and, only then, its plan (`kforge
// reconfigure --dry-run`) and, on a control-plane host, its certificates' expiry (`kforge
// certs check-expiration`). It installs nothing: the cluster.toml they read goes under
// planDir and is removed after. Nil without a cluster; an error only when this kforge
// binary cannot be read.
func (f *Fleet) HostFacts(ctx context.Context) (map[string]HostFacts, error) {
	if !f.HasCluster() {
		return nil, nil
	}
	if err := f.hashKforge(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	o := f.observed
	f.mu.Unlock()
	var conns []host.Host
	for _, h := range f.c.Hosts {
		if _, ok := o.Nodes[h.Name]; !ok || o.Stale[h.Name] || o.Unreachable[h.Name] {
			continue
		}
		if conn := f.conn(h.Name); conn != nil {
			conns = append(conns, conn)
		}
	}
	var mu sync.Mutex
	out := map[string]HostFacts{}
	// Every failure is kept in the host's facts: the error here is only cancellation.
	err := host.ForEach(ctx, conns, f.o.Concurrency, func(ctx context.Context, conn host.Host) error {
		h, _ := f.c.HostByName(conn.Name())
		start := time.Now()
		hf, err := f.hostFacts(ctx, h)
		if err != nil {
			return err
		}
		f.out().Phase(h.Name, "%s (%s)", hf.line(), time.Since(start).Round(10*time.Millisecond))
		mu.Lock()
		out[h.Name] = hf
		mu.Unlock()
		return nil
	})
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	return out, err
}

// line says in a few words what a host told.
func (hf HostFacts) line() string {
	switch {
	case !hf.SameKforge:
		return "kforge here is another build: not asked (status installs nothing)"
	case hf.Plan == nil:
		return hf.PlanError
	case hf.Plan.Empty():
		return "matches the file"
	}
	return changesNote(len(hf.Plan.Changes), hf.Plan.Restarts)
}

// hostFacts asks one host; see HostFacts.
func (f *Fleet) hostFacts(ctx context.Context, h *config.Host) (HostFacts, error) {
	var hf HostFacts
	same, err := f.runsThisBuild(ctx, h.Name)
	if err != nil || !same {
		return hf, err
	}
	hf.SameKforge = true
	s := f.scratch(h.Name)
	defer s.remove(ctx)
	cfg, err := f.planConfig(ctx, s)
	if err != nil {
		hf.PlanError = f.redact(fmt.Sprintf("putting cluster.toml under %s: %v", planDir, err))
		hf.CertsError = hf.PlanError
		return hf, nil
	}
	if p, err := f.planWith(ctx, h.Name, RemoteKforge, cfg); err != nil {
		hf.PlanError = f.redact(fmt.Sprintf("asking for the host's plan: %v", err))
	} else {
		hf.Plan = &p
	}
	if h.IsControlPlane() {
		if rows, err := f.certExpiry(ctx, h.Name, cfg); err != nil {
			hf.CertsError = f.redact(err.Error())
		} else {
			hf.Certs = rows
		}
	}
	return hf, ctx.Err()
}

// certExpiry runs `kforge certs check-expiration -o json` on a host with the
// cluster.toml cfg there.
func (f *Fleet) certExpiry(ctx context.Context, name, cfg string) ([]certs.ExpiryRow, error) {
	var out bytes.Buffer
	if err := f.kforgeAt(ctx, name, RemoteKforge, []string{"certs", "check-expiration", "-f", cfg, "-o", "json"}, nil, &out); err != nil {
		return nil, err
	}
	var rep certs.ExpiryReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("reading what kforge certs check-expiration printed: %w", err)
	}
	return rep.Certificates, nil
}
