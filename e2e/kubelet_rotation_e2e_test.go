//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/internal/testutil"
	"github.com/kforge/kforge/kubelet"
)

// kubeletClientFile is the name of a timestamped client certificate file of the kubelet's
// certificate store: kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem.
var kubeletClientFile = regexp.MustCompile(`^kubelet-client-\d{4}(-\d\d){5}\.pem$`)

// checkKubeletRotation checks the kubelet's client certificate layout and that the kubelet
// rotates it. After init, kubelet-client-current.pem links to a timestamped file (kforge's,
// or the kubelet's own: started before kubelet-finalize, the kubelet lays out the pair
// kubelet.conf embeds itself). Then the test leaves what an older kforge left, a plain
// kubelet-client-current.pem, holding a pair long past its rotation deadline (70 to 90% of
// its lifetime) but still valid: a re-run of init must convert it into a timestamped file
// with the same bytes and a link to it, and the kubelet, restarted, must rotate it at once
// (before the conversion it refuses: "expected ... to be a symlink"), with a CSR
// auto-approved for the node and signed by the controller-manager, into a new file it links
// to, the node still Ready. A further re-run of init leaves the kubelet's link alone.
func checkKubeletRotation(t *testing.T, ctx context.Context, n *node, cs kubernetes.Interface, nodeName string, initArgs []string) {
	t.Helper()
	dir, current := kubelet.CertDir, kubelet.ClientCertPath
	n.sh(ctx, "grep -qF 'client-certificate: "+current+"' /etc/kubernetes/kubelet.conf")
	// kforge links to the file by its name, the kubelet by its full path.
	inDir := func(link string) (string, bool) {
		if !path.IsAbs(link) {
			link = path.Join(dir, link)
		}
		return link, path.Dir(link) == dir && kubeletClientFile.MatchString(path.Base(link))
	}
	checkLink := func(what string) (link, file string) {
		t.Helper()
		link = strings.TrimSpace(n.sh(ctx, "readlink "+current+" || stat -c '%F' "+current))
		file, ok := inDir(link)
		if !ok {
			t.Fatalf("%s: %s is %q, want a link to kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem beside it", what, current, link)
		}
		if typ := strings.TrimSpace(n.sh(ctx, "stat -c '%F %a' "+file)); typ != "regular file 600" {
			t.Fatalf("%s: %s is a %s, want a regular file with mode 600", what, file, typ)
		}
		t.Logf("%s: %s links to %s", what, current, link)
		return link, file
	}
	checkLink("after init")

	caPEM := n.sh(ctx, "cat /etc/kubernetes/pki/ca.crt")
	caKeyPEM := n.sh(ctx, "cat /etc/kubernetes/pki/ca.key")
	ca, err := certs.ParseCertPEM([]byte(caPEM))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := certs.ParseKeyPEM([]byte(caKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert, key := testutil.UseCA(t, ca, caKey).Sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(5 * time.Minute),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	pair := append(cert, key...)
	putFile(t, ctx, n.h, current+".old-kforge", pair, "600")
	n.sh(ctx, "mv -f "+current+".old-kforge "+current)

	out, err := n.run(ctx, initArgs...)
	if err != nil {
		t.Fatal(err)
	}
	link, converted := checkLink("after a re-run of init over an older kforge's plain file")
	if path.IsAbs(link) || !strings.Contains(out, "moved the kubelet's client certificate to") {
		t.Errorf("the re-run of init did not convert the plain file:\n%s", out)
	}
	if got := n.sh(ctx, "cat "+converted); got != string(pair) {
		t.Fatalf("%s does not hold the plain file's bytes", converted) // the key stays out of the log
	}
	n.sh(ctx, `if [ -s /run/kforge/kubelet.pid ]; then kill -HUP "$(cat /run/kforge/kubelet.pid)"; else systemctl restart kubelet; fi`)

	var rotated string
	took := waitFor(t, ctx, "the kubelet to rotate its client certificate", 3*time.Minute, func() error {
		out, _, err := n.h.Exec(ctx, nil, "readlink", current)
		if err != nil {
			return err
		}
		if rotated = strings.TrimSpace(string(out)); rotated == link {
			return fmt.Errorf("%s still links to %s", current, link)
		}
		return nil
	})
	if _, ok := inDir(rotated); !ok {
		t.Fatalf("after the rotation %s links to %q, want a timestamped file in %s", current, rotated, dir)
	}
	got, err := certs.ParseCertPEM([]byte(n.sh(ctx, "cat "+current)))
	if err != nil {
		t.Fatal(err)
	}
	if err := got.CheckSignatureFrom(ca); err != nil || got.Subject.CommonName != "system:node:"+nodeName || got.NotAfter.Before(now.Add(time.Hour)) {
		t.Fatalf("the rotated certificate: CN %q, valid until %s, signed by the cluster CA: %v; want the node's, for the signing duration", got.Subject.CommonName, got.NotAfter, err)
	}
	if typ := strings.TrimSpace(n.sh(ctx, "stat -c '%F' "+converted)); typ != "regular file" {
		t.Errorf("the converted file %s is gone after the rotation (%s)", converted, typ)
	}
	t.Logf("the kubelet rotated its client certificate %s after its restart: %s -> %s, valid until %s", took.Round(time.Second), link, rotated, got.NotAfter.Format(time.RFC3339))
	waitFor(t, ctx, "node Ready after the rotation", 2*time.Minute, func() error { return nodeReady(ctx, cs, nodeName) })

	out, err = n.run(ctx, initArgs...)
	if err != nil {
		t.Fatal(err)
	}
	if after := strings.TrimSpace(n.sh(ctx, "readlink "+current)); after != rotated {
		t.Errorf("a re-run of init moved %s from the kubelet's %s to %s:\n%s", current, rotated, after, out)
	}
}

// watchKubeletRotations watches the kubelet's client certificate on every node of a
// cluster whose controller-manager signs with a short --cluster-signing-duration. The
// kubelet keeps each certificate it rotated to in a timestamped file of its own, so the
// files beside kubelet-client-current.pem count the rotations since the node joined (the
// first file is the one it joined with). It polls every node's files and whether the node
// is Ready, until every node's kubelet has rotated at least `times` times, or timeout; it
// fails on a node that did not, on any poll that found a node not Ready, and on a current
// certificate that is not the node's, signed by the cluster CA. It returns what it saw,
// for the log.
func watchKubeletRotations(t *testing.T, ctx context.Context, cs kubernetes.Interface, nodes []*node, times int, timeout time.Duration) string {
	t.Helper()
	files := map[string][]string{} // node -> its timestamped client certificate files
	notReady := map[string]int{}
	polls := 0
	deadline := time.Now().Add(timeout)
	done := func() bool {
		for _, n := range nodes {
			if len(files[n.h.Name]) < times+1 {
				return false
			}
		}
		return true
	}
	for polls == 0 || (!done() && time.Now().Before(deadline) && ctx.Err() == nil) {
		if polls > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
		polls++
		for _, n := range nodes {
			out, _, err := n.h.Exec(ctx, nil, "sh", "-c", "cd "+kubelet.CertDir+" && ls")
			if err != nil {
				t.Errorf("%s: listing %s: %v", n.h.Name, kubelet.CertDir, err)
				continue
			}
			var names []string
			for _, f := range strings.Fields(string(out)) {
				if kubeletClientFile.MatchString(f) {
					names = append(names, f)
				}
			}
			files[n.h.Name] = names
			if err := nodeReady(ctx, cs, n.h.Name); err != nil {
				notReady[n.h.Name]++
				t.Logf("%s not Ready at poll %d: %v", n.h.Name, polls, err)
			}
		}
	}
	var report []string
	for _, n := range nodes {
		names := files[n.h.Name]
		report = append(report, fmt.Sprintf("%s: %d rotations (%s)", n.h.Name, len(names)-1, strings.Join(names, ", ")))
		if len(names) < times+1 {
			t.Errorf("%s: the kubelet rotated its client certificate %d times, want at least %d: %v", n.h.Name, len(names)-1, times, names)
		}
		if notReady[n.h.Name] > 0 {
			t.Errorf("%s was not Ready at %d of %d polls while its kubelet rotated", n.h.Name, notReady[n.h.Name], polls)
		}
		ca, err := certs.ParseCertPEM([]byte(n.sh(ctx, "cat /etc/kubernetes/pki/ca.crt")))
		if err != nil {
			t.Fatal(err)
		}
		got, err := certs.ParseCertPEM([]byte(n.sh(ctx, "cat "+kubelet.ClientCertPath)))
		if err != nil {
			t.Fatal(err)
		}
		if err := got.CheckSignatureFrom(ca); err != nil || got.Subject.CommonName != "system:node:"+n.h.Name {
			t.Errorf("%s: the current client certificate is for %q, signed by the cluster CA: %v", n.h.Name, got.Subject.CommonName, err)
		}
	}
	return fmt.Sprintf("%d polls: %s", polls, strings.Join(report, "; "))
}
