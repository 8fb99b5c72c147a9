// Package host is how kforge acts on a machine: run a command, upload a file.
//
// A [Host] is a machine reached over SSH ([SSHHost], made by [Dial]); tests
// and the testbed provide their own implementations. The interface is deliberately
// small: a host describes itself, runs a command (with optional stdin) and
// uploads a file with a mode and an owner. Knowledge about operating systems
// (package managers, systemd, paths) lives in helper functions built on top of
// Run, never in the implementations.
//
// # Commands
//
// A [Cmd] is either an argument vector (Args, quoted for the remote shell with
// [ShellQuote]) or a shell script (Script, run by sh -c). A command that exits
// with a non-zero status returns an [*ExitError] naming the host, the command
// and the tail of its stderr.
//
// # Secrets
//
// Secrets (bootstrap token secrets, private keys, the certificate key) must
// travel through Cmd.Stdin, never through Args or Script: stdin is never
// copied into an error or a log line, while the command text is (abbreviated).
// When even the command text is sensitive, set Cmd.Display to the text that
// errors should show instead.
//
// # SSH
//
// [Dial] opens one SSH connection per host; every Run opens a new session on
// it. Host keys are verified against a known_hosts file: an unknown host fails
// with [ErrUnknownHostKey] unless SSHConfig.AcceptNewHostKeys is set (then the
// key is recorded and its fingerprint reported), and a changed key always fails
// with [ErrHostKeyChanged]. Authentication failures wrap [ErrAuth]. Users other
// than root need passwordless sudo; without it commands fail with [ErrNoSudo].
// Cancelling the context of a running command sends it SIGKILL and closes its
// session. A bastion (jump host) is supported through SSHConfig.Bastion.
//
// # Uploads
//
// Upload writes a file atomically: the bytes go to a temporary file in the
// destination directory, their sha256 is checked, the mode and owner are set,
// and the file is renamed into place. A destination that already has the same
// content, mode and owner is left alone and the result says Skipped.
//
// # Fan-out
//
// [ForEach] runs a function on many hosts with a concurrency limit, lets every
// host finish even when some fail, and returns all failures joined, each as a
// [*HostError] naming its host.
package host
