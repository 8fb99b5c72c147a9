package phases

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kforge/kforge/bootstrap"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/internal/fileutil"
	"github.com/kforge/kforge/internal/wait"
	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/kubelet"
)

// downloadCertsPhase writes the shared control-plane certificates PrepareJoin opened.
func downloadCertsPhase() Phase {
	return Phase{
		Name:  "download-certs",
		Short: "Write the shared certificates (CAs, service-account keys) from Secret kube-system/kubeadm-certs",
		Run: func(_ context.Context, d *Data) error {
			const phase = "download-certs"
			if d.Join.SharedCerts == nil {
				d.Out.Phase(phase, "using the shared certificates already on this host")
				return nil
			}
			for _, f := range bootstrap.SharedCertFiles(d.Cluster, d.CertDir) {
				data, ok := d.Join.SharedCerts[f.Key]
				if !ok {
					continue // optional: an external CA's key
				}
				have, err := readFileIfExists(d.Path(f.Path))
				if err != nil {
					return err
				}
				if have != nil {
					if !bytes.Equal(have, data) {
						return fmt.Errorf("%s differs from the cluster's copy in %s/%s: this host holds other certificates; run 'kforge reset' first",
							f.Path, bootstrap.NamespaceSystem, bootstrap.CertsSecretName)
					}
					d.Out.Phase(phase, "using existing %s", f.Path)
					continue
				}
				mode := fs.FileMode(0o644)
				if filepath.Ext(f.Path) == ".key" {
					mode = 0o600
				}
				if _, err := fileutil.WriteAtomic(d.Path(f.Path), data, mode, 0o700); err != nil {
					return err
				}
				d.Out.Phase(phase, "wrote %s", f.Path)
			}
			return nil
		},
	}
}

// joinKubeletStartPhase writes the cluster CA and bootstrap-kubelet.conf, then the kubelet's
// configuration, and starts the kubelet, which requests its client certificate with the
// token (TLS bootstrap).
func joinKubeletStartPhase() Phase {
	return Phase{
		Name:  "kubelet-start",
		Short: "Write bootstrap-kubelet.conf and the kubelet configuration, then start the kubelet for its TLS bootstrap",
		Run: func(ctx context.Context, d *Data) error {
			const phase = "kubelet-start"
			changed := false
			caShown := filepath.Join(d.CertDir, "ca.crt")
			res, err := fileutil.WriteAtomic(d.Path(caShown), d.Join.ClusterCA, 0o644, 0o700)
			if err != nil {
				return err
			}
			if res != fileutil.Unchanged {
				d.Out.Phase(phase, "wrote the cluster CA to %s", caShown)
			}
			bootShown := filepath.Join(d.KubeconfigDir, kubelet.BootstrapConfigName)
			if d.Join.AlreadyJoined {
				d.Out.Phase(phase, "the kubelet already has its client certificate; no TLS bootstrap needed")
			} else {
				if d.Token.IsZero() {
					return errors.New("no bootstrap token for the TLS bootstrap: pass --token")
				}
				data, err := kubeconfig.BuildWithToken(d.Cluster.Name, d.Join.Server, d.Join.ClusterCA, kubeconfig.BootstrapUser, d.Token.String())
				if err != nil {
					return err
				}
				res, err := fileutil.WriteAtomic(d.Path(bootShown), data, 0o600, 0o755)
				if err != nil {
					return err
				}
				if res != fileutil.Unchanged {
					changed = true
					d.Out.Phase(phase, "wrote %s (token %s)", bootShown, d.Token.ID)
				}
			}
			return startKubelet(ctx, d, changed)
		},
	}
}

// kubeletWaitBootstrapPhase waits for the kubelet's TLS bootstrap to finish and its Node to
// register, then removes bootstrap-kubelet.conf, whose token is no longer needed.
func kubeletWaitBootstrapPhase() Phase {
	return Phase{
		Name:  "kubelet-wait-bootstrap",
		Short: "Wait for the kubelet's client certificate and its Node, then remove bootstrap-kubelet.conf",
		Run: func(ctx context.Context, d *Data) error {
			const phase = "kubelet-wait-bootstrap"
			confShown := filepath.Join(d.KubeconfigDir, kubelet.KubeconfigName)
			if !d.Join.AlreadyJoined {
				d.Out.Phase(phase, "waiting up to %s for the kubelet's TLS bootstrap (%s)", d.Wait, confShown)
			}
			err := waitUntil(ctx, d, "the kubelet to write "+confShown, func(context.Context) error {
				if !joinedHere(d, d.Join.ClusterCA) {
					return fmt.Errorf("%s has no client certificate for node %s signed by the cluster CA yet", confShown, d.Node.Name)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("the kubelet did not finish its TLS bootstrap: %w%s", err, kubeletLogHint(d))
			}
			cs, err := clusterClient(ctx, d, phase)
			if err != nil {
				return err
			}
			name := d.Node.Name
			err = waitUntil(ctx, d, "Node "+name+" to be registered", func(ctx context.Context) error {
				_, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				if err == nil || apierrors.IsNotFound(err) || apiclient.IsTransient(err) {
					if err != nil {
						return fmt.Errorf("reading Node %s: %w", name, err)
					}
					return nil
				}
				return wait.Permanent(fmt.Errorf("reading Node %s: %w", name, err))
			})
			if err != nil {
				return fmt.Errorf("waiting for the kubelet to register Node %s: %w%s", name, err, kubeletLogHint(d))
			}
			d.Out.Phase(phase, "the kubelet has its client certificate and Node %s is registered", name)
			bootShown := filepath.Join(d.KubeconfigDir, kubelet.BootstrapConfigName)
			if err := os.Remove(d.Path(bootShown)); err == nil {
				d.Out.Phase(phase, "removed %s", bootShown)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", bootShown, err)
			}
			return nil
		},
	}
}
