//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// checkSecurityPosture probes the [security] defaults on a running cluster: anonymous
// access, Secrets encrypted in etcd, the audit log, and Pod Security.
func checkSecurityPosture(t *testing.T, ctx context.Context, n *node, cs kubernetes.Interface) {
	t.Run("anonymous access", func(t *testing.T) {
		// Anonymous means no credentials at all; the serving certificate is not what is
		// tested here.
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test probe, no credentials sent
		}}
		base := "https://" + n.h.Address.String() + ":6443"
		for _, tc := range []struct {
			path string
			ok   bool
		}{
			{"/readyz", true},
			{"/livez", true},
			{"/api/v1/namespaces/kube-public/configmaps/cluster-info", true},
			{"/api", false},
			{"/apis", false},
			{"/version", false},
			{"/api/v1/namespaces/kube-system/secrets", false},
			{"/api/v1/namespaces/kube-public/configmaps", false},
		} {
			resp, err := client.Get(base + tc.path)
			if err != nil {
				t.Errorf("GET %s: %v", tc.path, err)
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			denied := resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
			switch {
			case tc.ok && resp.StatusCode != http.StatusOK:
				t.Errorf("anonymous GET %s = %d, want 200: %s", tc.path, resp.StatusCode, body)
			case !tc.ok && !denied:
				t.Errorf("anonymous GET %s = %d, want 401 or 403: %s", tc.path, resp.StatusCode, body)
			default:
				t.Logf("anonymous GET %s = %d", tc.path, resp.StatusCode)
			}
		}
	})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "security-probe"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns.Name},
		StringData: map[string]string{"password": "plain-text-marker"},
	}
	if _, err := cs.CoreV1().Secrets(ns.Name).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	t.Run("secrets encrypted in etcd", func(t *testing.T) {
		etcdctl := filepath.Join(n.lab.BundleDir, "bin", "etcdctl")
		raw := n.sh(ctx, fmt.Sprintf("ETCDCTL_API=3 %s --endpoints=https://127.0.0.1:2379 "+
			"--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/apiserver-etcd-client.crt "+
			"--key=/etc/kubernetes/pki/apiserver-etcd-client.key get /registry/secrets/%s/probe --print-value-only",
			etcdctl, ns.Name))
		if !strings.HasPrefix(raw, "k8s:enc:secretbox:v1:") {
			t.Errorf("the Secret in etcd does not start with k8s:enc:secretbox:v1: but %q", truncate(raw, 40))
		}
		if strings.Contains(raw, "plain-text-marker") {
			t.Error("the Secret's value is readable in etcd")
		}
	})

	t.Run("audit log records a Secret read", func(t *testing.T) {
		if _, err := cs.CoreV1().Secrets(ns.Name).Get(ctx, "probe", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the Secret read in the audit log", 30*time.Second, func() error {
			log := n.sh(ctx, "grep -h '\"resource\":\"secrets\"' /var/log/kubernetes/audit/audit.log || true")
			for _, line := range strings.Split(log, "\n") {
				var ev struct {
					Verb      string `json:"verb"`
					Level     string `json:"level"`
					ObjectRef struct {
						Namespace, Name string
					} `json:"objectRef"`
					RequestObject  json.RawMessage `json:"requestObject"`
					ResponseObject json.RawMessage `json:"responseObject"`
				}
				if json.Unmarshal([]byte(line), &ev) != nil || ev.Verb != "get" || ev.ObjectRef.Namespace != ns.Name || ev.ObjectRef.Name != "probe" {
					continue
				}
				if ev.Level != "Metadata" || len(ev.ResponseObject) > 0 || strings.Contains(line, "plain-text-marker") {
					return fmt.Errorf("the Secret read is logged beyond its metadata: %s", line)
				}
				return nil
			}
			return fmt.Errorf("no get of secrets %s/probe in the audit log", ns.Name)
		})
	})

	t.Run("privileged pod rejected", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: ns.Name},
			Spec: corev1.PodSpec{
				HostPID: true,
				Containers: []corev1.Container{{
					Name: "c", Image: TestImage, Command: []string{"sleep", "3600"},
					SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
					VolumeMounts:    []corev1.VolumeMount{{Name: "root", MountPath: "/host"}},
				}},
				Volumes: []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
			},
		}
		_, err := cs.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil {
			_ = cs.CoreV1().Pods(ns.Name).Delete(ctx, pod.Name, metav1.DeleteOptions{})
			t.Fatal("a privileged pod with hostPID and hostPath / was admitted in a new namespace")
		}
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
			t.Fatalf("creating a privileged pod: %v, want a PodSecurity refusal", err)
		}
		t.Logf("refused: %v", err)
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
