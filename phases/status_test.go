package phases

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/fleet"
	"github.com/kforge/kforge/internal/overlay"
	"github.com/kforge/kforge/internal/testutil"
)

// TestStatusWorkflow: status over a running cluster of fake hosts asks each host in the
// cluster that runs this kforge build for its plan (and a control plane for its
// certificates), reads the rest from the API, and leaves nothing behind: it uploads only
// the cluster.toml it compares with, under /tmp, and removes it; it installs no kforge and
// runs no kforge that changes anything.
func TestStatusWorkflow(t *testing.T) {
	var nodes []*corev1.Node
	for _, n := range []*corev1.Node{cpNode("cp1"), cpNode("cp2"), workerNode("w1"), workerNode("w2")} {
		n.Status.NodeInfo.KubeletVersion = "v1.31.2"
		nodes = append(nodes, n)
	}
	l := newUpLab(t, true, nodes...)
	for _, node := range []string{"cp1", "cp2"} {
		for _, comp := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: comp + "-" + node, Namespace: metav1.NamespaceSystem,
					Labels:      map[string]string{"component": comp, "tier": "control-plane"},
					Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "x"}},
				Spec:   corev1.PodSpec{NodeName: node},
				Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
			}
			if _, err := l.cs.CoreV1().Pods(metav1.NamespaceSystem).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.plans["w1"] = fleet.HostPlan{Node: "w1", Role: "worker", Changes: []overlay.FileChange{{Path: "/var/lib/kubelet/config.yaml", Action: overlay.Update}}, Restarts: []string{"kubelet"}}
	expires := time.Now().Add(100 * 24 * time.Hour).UTC().Round(time.Second)
	certsJSON, err := json.Marshal(certs.ExpiryReport{Certificates: []certs.ExpiryRow{
		{Name: "ca", NotAfter: expires.Add(3000 * 24 * time.Hour)}, {Name: "apiserver", NotAfter: expires, Signer: "ca"}}})
	if err != nil {
		t.Fatal(err)
	}
	d := l.data(true)
	sum := sha256.Sum256([]byte("#!/bin/sh\n")) // the kforge binary l.data writes
	for name, fh := range l.hosts {
		hash := hex.EncodeToString(sum[:])
		if name == "cp2" {
			hash = strings.Repeat("0", 64) // another build
		}
		fh.Rules = append([]testutil.Rule{
			testutil.On(`^sha256sum /usr/local/bin/kforge$`, hash+"  /usr/local/bin/kforge\n"),
			testutil.On(`^kforge certs check-expiration -f /tmp/\S+ -o json$`, string(certsJSON)),
		}, fh.Rules...)
	}
	if err := StatusWorkflow().Run(t.Context(), d, "", nil); err != nil {
		t.Fatalf("status: %v\n%s", err, l.out.String())
	}
	for _, line := range []string{"[static-pods] 8 of 8 static pods Ready on 2 nodes", "[cp1] matches the file (", "[w1] 1 file differs, restarts kubelet (",
		"[cp2] kforge here is another build: not asked", "[static-pods] done in ", "[hosts] done in "} {
		if !strings.Contains(l.out.String(), line) {
			t.Errorf("progress lacks %q:\n%s", line, l.out.String())
		}
	}
	t.Logf("progress:\n%s", l.out.String())
	s := d.StatusReport(t.Context())
	if s == nil {
		t.Fatal("no status")
	}
	hosts := map[string]fleet.HostStatus{}
	for _, h := range s.Hosts {
		hosts[h.Host] = h
	}
	if cp1 := hosts["cp1"]; cp1.Match != fleet.MatchYes || cp1.CertExpiry == nil || cp1.CertExpiry.Name != "apiserver" || !cp1.CertExpiry.NotAfter.Equal(expires) ||
		len(cp1.StaticPods) != 4 || !cp1.StaticPods[1].Ready || cp1.KubeletVersion != "v1.31.2" || !cp1.Ready {
		t.Errorf("cp1: %+v, want matching, healthy, apiserver expiring first", cp1)
	}
	if cp2 := hosts["cp2"]; cp2.Match != fleet.MatchUnknown || cp2.MatchNote != fleet.NoteOtherBuild || cp2.CertExpiry != nil || len(cp2.StaticPods) != 4 || !cp2.Ready {
		t.Errorf("cp2: %+v, want unknown (another build) with the API's facts", cp2)
	}
	if w1 := hosts["w1"]; w1.Match != fleet.MatchNo || w1.Changes != 1 || len(w1.Restarts) != 1 {
		t.Errorf("w1: %+v, want 1 change restarting the kubelet", w1)
	}
	if w2 := hosts["w2"]; w2.Match != fleet.MatchYes || w2.CertExpiry != nil {
		t.Errorf("w2: %+v, want matching, no certificates asked", w2)
	}
	if s.OK || len(s.Problems) != 2 || !s.Cluster.APIReachable || s.Cluster.Nodes != 4 {
		t.Errorf("status %+v, want not OK with two problems (cp2, w1), the API reached, 4 nodes", s)
	}
	// Read-only: what was uploaded is only a cluster.toml under /tmp, removed after.
	uploaded := map[string]bool{}
	rm := regexp.MustCompile(`^(\w+): rm -f -- (.*)$`)
	for _, e := range l.journal.Events() {
		host, what, _ := strings.Cut(e, ": ")
		switch {
		case strings.HasPrefix(what, "upload "):
			dst := strings.TrimPrefix(what, "upload ")
			if !strings.HasPrefix(dst, "/tmp/") || !strings.HasSuffix(dst, ".toml") {
				t.Errorf("%s: uploaded %s: status must put only its cluster.toml under /tmp", host, dst)
			}
			uploaded[host+" "+dst] = true
		case rm.MatchString(e):
			m := rm.FindStringSubmatch(e)
			for _, p := range strings.Fields(m[2]) {
				delete(uploaded, m[1]+" "+p)
			}
		case strings.HasPrefix(what, "kforge ") && !strings.Contains(what, "--dry-run") && !strings.HasPrefix(what, "kforge certs check-expiration"):
			t.Errorf("%s ran %q during status", host, what)
		case host == "cp2" && strings.HasPrefix(what, "kforge "):
			t.Errorf("cp2 runs another kforge build, but status ran %q there", what)
		}
	}
	if len(uploaded) > 0 {
		t.Errorf("left on the hosts: %v", uploaded)
	}
}
