// Package testbed builds "test hosts" on one Linux machine: each host is a set of
// namespaces that looks, from kforge's side of an SSH connection, like a fresh cloud VM with
// containerd preinstalled.
//
// A host hN has
//   - its own network namespace (kf-hN) on the root-namespace bridge kf-br0, with the
//     address 10.77.0.(10+N)/24 on eth0 and no default route. The root namespace is
//     10.77.0.1; an iptables FORWARD rule drops anything routed out of the bridge, so
//     nothing in a host reaches beyond the testbed;
//   - its own mount, UTS (hostname hN) and PID namespaces. Its PID 1 is kf-init, a small
//     program in this package: it mounts a sysfs of the host's network namespace (with the
//     machine's cgroup hierarchies under it), a fresh /run, and the host's private
//     directories and files (see PrivatePaths) from the state directory, makes / rshared
//     and then supervises sshd and containerd: it restarts either when it exits, writes
//     their pid files to the host's /run, logs them to the host's state directory and reaps
//     every orphan;
//   - sshd on its own address only, with a host key of its own, accepting root logins
//     with the testbed's key;
//   - containerd and runc from Debian with the stock configuration (`containerd config
//     default`): whatever a cluster needs beyond that is for kforge to configure;
//   - a cgroup /hN in every cgroup v1 hierarchy, to be the kubelet's cgroupRoot.
//
// Up creates the hosts (and installs the Debian packages they need), Load finds them
// again from the state directory, Down removes every trace. Host.Exec and Host.Command run
// a command inside a host through nsenter on its PID 1; StopService, StartService,
// PowerOff and PowerOn are the faults a test can inject.
//
// The program that becomes a host's PID 1 is the binary that uses this package: Up links
// (or copies) os.Executable() into the state directory as bin/kf-init, and this
// package's init function turns a process started under that name into the host's init
// before main runs. Any binary that imports the package, a test binary included, can
// therefore create hosts.
package testbed
