// Package e2e holds kforge's slow test tiers, which run the real Kubernetes and etcd
// binaries that e2e/bundle builds from the pinned modules in e2e/kbuild and e2e/etcdbuild:
//
//   - integration (build tag integration, no root, loopback only): kforge writes the PKI,
//     kubeconfigs and static pod manifests into a temp dir, and the test runs etcd and the
//     control plane straight from the manifests' command lines, then checks the cluster
//     through client-go. Run it with `make integration`.
//   - e2e (build tag e2e, root): real hosts, kubelets and a container runtime.
package e2e
