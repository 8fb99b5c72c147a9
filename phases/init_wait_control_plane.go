package phases

import (
	"context"
	"net"
	"strconv"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/manifests"
)

// healthCheck is one control-plane component's health endpoint.
type healthCheck struct {
	component string // static pod name: kube-apiserver
	url       string
	insecure  bool // loopback endpoint with a self-signed serving certificate
}

func controlPlaneChecks(d *Data) []healthCheck {
	port := strconv.Itoa(config.DefaultAPIServerPort)
	if p := d.Cluster.APIServer.ExtraArgs["secure-port"]; p != "" {
		port = p
	}
	api := "https://" + net.JoinHostPort(d.AdvertiseAddress.String(), port)
	var checks []healthCheck
	if d.Cluster.Etcd.Local != nil {
		// etcd's metrics listener (plain HTTP on loopback), which its own probes use.
		checks = append(checks, healthCheck{component: manifests.NameEtcd, url: "http://127.0.0.1:" + strconv.Itoa(manifests.EtcdMetricsPort) + "/health"})
	}
	return append(checks, []healthCheck{
		{component: manifests.NameAPIServer, url: api + "/livez"},
		{component: manifests.NameAPIServer, url: api + "/readyz"},
		{component: manifests.NameControllerManager, url: "https://127.0.0.1:10257/healthz", insecure: true},
		{component: manifests.NameScheduler, url: "https://127.0.0.1:10259/livez", insecure: true},
	}...)
}

// waitControlPlanePhase waits until every control-plane component answers its health
// endpoint. Shared by init and join.
//
// Reads Data.Cluster, Data.AdvertiseAddress, Data.Waiter and Data.Wait.
func waitControlPlanePhase() Phase {
	return Phase{
		Name:  "wait-control-plane",
		Short: "Wait for the kubelet to start the control plane and for every component to report healthy",
		Run: func(ctx context.Context, d *Data) error {
			return d.Waiter.WaitControlPlane(ctx, d)
		},
	}
}
