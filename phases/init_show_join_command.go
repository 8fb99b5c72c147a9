package phases

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/tokens"
	"k8s.io/client-go/kubernetes"
)

// ShowJoinCommandPhase prints the commands that join worker and control-plane nodes. It is
// the one place the token secret is shown (on stdout, for the user).
//
// Reads Data.Cluster, Data.Token, Data.UploadCerts, Data.CertificateKey and the CA on disk;
// sets Data.Token to the cluster's longest-lived join token when it has none.
func ShowJoinCommandPhase() Phase {
	return Phase{
		Name:  "show-join-command",
		Short: "Print the commands that join worker and control-plane nodes",
		Run:   runShowJoinCommand,
	}
}

func runShowJoinCommand(ctx context.Context, d *Data) error {
	b := &d.BootstrapData
	if b.Token.IsZero() {
		cs, err := clusterClient(ctx, d)
		if err != nil {
			return err
		}
		if err := findJoinToken(ctx, d, cs); err != nil {
			return err
		}
	}
	caPEM, err := readClusterCA(d)
	if err != nil {
		return err
	}
	ca, err := certs.ParseCertPEM(caPEM)
	if err != nil {
		return fmt.Errorf("reading the cluster CA: %w", err)
	}
	host, port := d.Cluster.Endpoint()
	cmd := fmt.Sprintf("kforge join %s --token %s \\\n    --discovery-token-ca-cert-hash %s",
		net.JoinHostPort(host, strconv.Itoa(port)), b.Token.Reveal(), certs.PinHash(ca))

	w := d.Out.Writer()
	fmt.Fprintf(w, "\nTo join worker nodes, run this on each of them as root:\n\n  %s\n\n", cmd)
	if b.UploadCerts && !b.CertificateKey.IsZero() {
		fmt.Fprintf(w, "To join control-plane nodes, run this on each of them as root:\n\n  %s \\\n    --control-plane --certificate-key %s\n\n", cmd, b.CertificateKey.Reveal())
		fmt.Fprintf(w, "The certificate key opens the certificates in Secret kube-system/kubeadm-certs, which is\n"+
			"deleted two hours after upload; \"kforge init phase upload-certs --upload-certs\" uploads them again.\n\n")
	} else {
		fmt.Fprintf(w, "To join control-plane nodes, first share the certificates: run\n"+
			"\"kforge init phase upload-certs --upload-certs\" and add \"--control-plane --certificate-key <key>\"\n"+
			"to the command above, or copy the CAs and sa.key/sa.pub from this node and add \"--control-plane\".\n\n")
	}
	if !b.tokenExpires.IsZero() {
		fmt.Fprintf(w, "The token expires at %s; \"kforge init phase bootstrap-token\" makes a new one.\n", b.tokenExpires.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "A stock \"kubeadm join\" accepts the same arguments: replace \"kforge join\" with \"kubeadm join\".\n")
	return nil
}

// findJoinToken picks the join token in the cluster that lives longest, for a
// show-join-command run without --token and without bootstrap-token before it.
func findJoinToken(ctx context.Context, d *Data, cs kubernetes.Interface) error {
	entries, err := tokens.NewStore(cs, d.Log).List(ctx)
	if err != nil {
		return err
	}
	best, ok := tokens.LongestJoinToken(entries, d.Now())
	if !ok {
		return errors.New("no join token to show: pass --token, or run the bootstrap-token phase to create one")
	}
	d.BootstrapData.Token = best.Token
	d.BootstrapData.tokenExpires = best.Spec.Expires
	d.Log.Debug("showing an existing join token", "token", best.Token)
	return nil
}
