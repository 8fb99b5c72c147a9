package testbed

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// newKeyPair makes an ed25519 key: the private key in OpenSSH PEM form and the public key
// as an authorized_keys line.
func newKeyPair(comment string) (private, public []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating an ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding an ed25519 key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment + "\n"
	return pem.EncodeToMemory(block), []byte(line), nil
}

// ensureKeyPair writes path and path.pub unless path exists already.
func ensureKeyPair(path, comment string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	priv, pub, err := newKeyPair(comment)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(path+".pub", pub, 0o644); err != nil {
		return err
	}
	return writeFileAtomic(path, priv, 0o600)
}

// sshdConfig is each host's sshd_config: its own address only, root by key only, and the
// sftp subsystem that file transfer may use. The testbed's init runs sshd in the
// foreground and keeps its pid file itself.
func sshdConfig(h Host) []byte {
	return []byte(fmt.Sprintf(`# Written by the kforge testbed for host %s.
ListenAddress %s:%d
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`, h.Name, h.Address, SSHPort))
}

// createHostSSH gives a host its sshd configuration, a host key of its own (kept if it has
// one) and the testbed's key in root's authorized_keys.
func (t *Testbed) createHostSSH(h Host) error {
	root := t.hostFS(h.Name)
	etc := filepath.Join(root, "etc/ssh")
	for _, f := range []string{"ssh_config", "moduli"} { // for ssh inside the host, and sshd's DH groups
		if b, err := os.ReadFile(filepath.Join("/etc/ssh", f)); err == nil {
			if _, err := os.Stat(filepath.Join(etc, f)); errors.Is(err, fs.ErrNotExist) {
				if err := os.WriteFile(filepath.Join(etc, f), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	if err := ensureKeyPair(filepath.Join(etc, "ssh_host_ed25519_key"), "root@"+h.Name); err != nil {
		return fmt.Errorf("creating the host key of %s: %w", h.Name, err)
	}
	if err := writeFileAtomic(filepath.Join(etc, "sshd_config"), sshdConfig(h), 0o644); err != nil {
		return err
	}
	pub, err := os.ReadFile(t.SSHKey() + ".pub")
	if err != nil {
		return fmt.Errorf("reading the testbed's public key: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "root/.ssh"), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(root, "root/.ssh/authorized_keys"), pub, 0o600)
}

// writeKnownHosts writes a known_hosts line for each host that has a key, by name and by
// address.
func (t *Testbed) writeKnownHosts(hosts []Host) error {
	var b strings.Builder
	for _, h := range hosts {
		line, err := os.ReadFile(filepath.Join(t.hostFS(h.Name), "etc/ssh/ssh_host_ed25519_key.pub"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a host that failed before it had a key
		}
		if err != nil {
			return fmt.Errorf("reading the host key of %s: %w", h.Name, err)
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			return fmt.Errorf("parsing the host key of %s: %w", h.Name, err)
		}
		b.WriteString(knownhosts.Line([]string{h.Name, h.Address.String()}, key) + "\n")
	}
	return writeFileAtomic(t.KnownHosts(), []byte(b.String()), 0o644)
}
