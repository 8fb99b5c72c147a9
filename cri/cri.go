// Package cri talks to the container runtime over the CRI, the same API the kubelet uses:
// reset removes pods through it (so the CNI plugins release their addresses) and tests
// read container IDs from it.
package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Client is a CRI runtime client on a unix socket.
type Client struct {
	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
}

// Dial connects to endpoint ("unix:///run/containerd/containerd.sock" or a path).
func Dial(endpoint string) (*Client, error) {
	path := strings.TrimPrefix(endpoint, "unix://")
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connecting to the container runtime on %s: %w", path, err)
	}
	return &Client{conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Version returns the runtime's name and version.
func (c *Client) Version(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", fmt.Errorf("asking the container runtime for its version: %w", err)
	}
	return v.RuntimeName + " " + v.RuntimeVersion, nil
}

// Sandbox is a pod sandbox.
type Sandbox struct {
	ID, Namespace, Name string
	Ready               bool
}

// Sandboxes lists every pod sandbox.
func (c *Client) Sandboxes(ctx context.Context) ([]Sandbox, error) {
	resp, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing pod sandboxes: %w", err)
	}
	var out []Sandbox
	for _, s := range resp.Items {
		out = append(out, Sandbox{ID: s.Id, Namespace: s.Metadata.GetNamespace(), Name: s.Metadata.GetName(),
			Ready: s.State == runtimeapi.PodSandboxState_SANDBOX_READY})
	}
	return out, nil
}

// Container is a running or exited container.
type Container struct {
	ID, Name, PodName, PodNamespace string
	Running                         bool
	// Created is when the runtime created it.
	Created time.Time
}

// Containers lists every container.
func (c *Client) Containers(ctx context.Context) ([]Container, error) {
	resp, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	var out []Container
	for _, ct := range resp.Containers {
		out = append(out, Container{ID: ct.Id, Name: ct.Metadata.GetName(),
			PodName:      ct.Labels["io.kubernetes.pod.name"],
			PodNamespace: ct.Labels["io.kubernetes.pod.namespace"],
			Running:      ct.State == runtimeapi.ContainerState_CONTAINER_RUNNING,
			Created:      time.Unix(0, ct.CreatedAt)})
	}
	return out, nil
}

// RemoveSandbox stops a pod sandbox (its containers die and the CNI plugin releases its
// network) and removes it.
func (c *Client) RemoveSandbox(ctx context.Context, id string) error {
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("stopping pod sandbox %s: %w", id, err)
	}
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("removing pod sandbox %s: %w", id, err)
	}
	return nil
}
