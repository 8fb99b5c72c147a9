package phases

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The Lease that lets one control plane at a time restart its static pods after a
// renewal.
const (
	CertsRenewLeaseNamespace = "kube-system"
	CertsRenewLeaseName      = "kforge-certs-renew"
	// CertsRenewLeaseDuration is how long a lease holds without being released: longer
	// than a renewal and its restarts take, so that a holder killed midway blocks the
	// others for no longer than this.
	CertsRenewLeaseDuration = 10 * time.Minute
)

// errLeaseHeld is what the wait for the lease sees while another control plane holds it.
var errLeaseHeld = errors.New("another control plane holds the renewal lease")

// takeRenewLease takes the renewal Lease for this host (Data.Node.Name), waiting (through
// Data.Waiter, up to Data.Wait) while another control plane holds an unexpired one. It
// returns the function that releases it. When the API cannot be reached (the apiserver is
// down, or admin.conf's certificate has expired) it says so and returns a no-op: the
// renewal is then offline, from the files of this host, and nothing can be serialized.
func takeRenewLease(ctx context.Context, d *Data) (func(context.Context), error) {
	noop := func(context.Context) {}
	if d.Client == nil {
		d.Out.Say("no kubeconfig on this host: renewing offline, without the renewal lease")
		return noop, nil
	}
	cs, err := d.Client()
	if err == nil {
		probe, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = cs.CoordinationV1().Leases(CertsRenewLeaseNamespace).List(probe, metav1.ListOptions{Limit: 1})
		cancel()
	}
	if err != nil {
		d.Out.Say("the API is not reachable (%v): renewing offline, without the renewal lease", err)
		return noop, nil
	}
	holder := d.Node.Name
	err = d.Waiter.WaitFor(ctx, d, "the certificate renewal lease "+CertsRenewLeaseNamespace+"/"+CertsRenewLeaseName, func(ctx context.Context) error {
		return acquireRenewLease(ctx, cs, holder, d.Now())
	})
	if err != nil {
		return nil, fmt.Errorf("taking the renewal lease, so that one control plane restarts at a time: %w", err)
	}
	d.Out.Say("took the renewal lease %s/%s", CertsRenewLeaseNamespace, CertsRenewLeaseName)
	return func(ctx context.Context) {
		if err := releaseRenewLease(ctx, cs, holder); err != nil {
			d.Out.Say("WARNING: releasing the renewal lease: %v; it expires by itself within %s", err, CertsRenewLeaseDuration)
			return
		}
		d.Out.Say("released the renewal lease")
	}, nil
}

// acquireRenewLease makes holder the holder of the Lease, if it is free, expired or
// already holder's; errLeaseHeld otherwise. A conflicting write is "not yet".
func acquireRenewLease(ctx context.Context, cs kubernetes.Interface, holder string, now time.Time) error {
	leases := cs.CoordinationV1().Leases(CertsRenewLeaseNamespace)
	secs := int32(CertsRenewLeaseDuration / time.Second)
	at := metav1.NewMicroTime(now)
	l, err := leases.Get(ctx, CertsRenewLeaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: CertsRenewLeaseName, Namespace: CertsRenewLeaseNamespace},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &at, RenewTime: &at},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if h := l.Spec.HolderIdentity; h != nil && *h != "" && *h != holder && !renewLeaseExpired(l, now) {
		return fmt.Errorf("%w: %s", errLeaseHeld, *h)
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.AcquireTime, l.Spec.RenewTime = &holder, &secs, &at, &at
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// renewLeaseExpired reports whether l's holder has held it longer than it asked for.
func renewLeaseExpired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return now.After(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// releaseRenewLease frees the Lease if holder still holds it.
func releaseRenewLease(ctx context.Context, cs kubernetes.Interface, holder string) error {
	leases := cs.CoordinationV1().Leases(CertsRenewLeaseNamespace)
	l, err := leases.Get(ctx, CertsRenewLeaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != holder {
		return nil
	}
	empty := ""
	l.Spec.HolderIdentity, l.Spec.RenewTime = &empty, nil
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}
