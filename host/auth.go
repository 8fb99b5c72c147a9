package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// authSetup is how Dial authenticates.
type authSetup struct {
	// method offers every key, from files and the agent, as one publickey
	// method: x/crypto tries each method name once, so a second publickey
	// method would never be used.
	method ssh.AuthMethod
	// tried describes the key sources, for error messages.
	tried []string
	// agentConn is the connection to ssh-agent, closed with the host.
	agentConn net.Conn
}

// auth loads the key files and connects to ssh-agent.
func (c SSHConfig) auth(ctx context.Context) (authSetup, error) {
	var setup authSetup
	var signers []ssh.Signer
	var encrypted []string
	for _, p := range c.KeyFiles {
		p = expandHome(p)
		data, err := os.ReadFile(p)
		if err != nil {
			return setup, fmt.Errorf("reading ssh key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(data)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			encrypted = append(encrypted, p)
			continue
		case err != nil:
			return setup, fmt.Errorf("parsing ssh key %s: %w", p, err)
		}
		signers = append(signers, s)
		setup.tried = append(setup.tried, "key "+p)
	}

	var agentClient agent.ExtendedAgent
	if c.UseAgent {
		sock := c.AgentSocket
		if sock == "" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
		switch {
		case sock == "" && len(signers) == 0:
			return setup, fmt.Errorf("%w: ssh-agent was requested but SSH_AUTH_SOCK is not set: start ssh-agent and add your key with ssh-add", ErrAuth)
		case sock == "":
			c.Logger.Warn("ssh-agent was requested but SSH_AUTH_SOCK is not set; using key files only", "host", c.Name)
		default:
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", sock)
			if err != nil {
				return setup, fmt.Errorf("%w: connecting to ssh-agent at %s (SSH_AUTH_SOCK): %w", ErrAuth, sock, err)
			}
			setup.agentConn = conn
			agentClient = agent.NewClient(conn)
			setup.tried = append(setup.tried, "ssh-agent")
		}
	}

	if len(encrypted) > 0 && agentClient == nil {
		return setup, fmt.Errorf("%w: ssh key %s is protected by a passphrase, which kforge cannot ask for: "+
			"load it into ssh-agent (ssh-add %s) and let kforge use the agent", ErrAuth, encrypted[0], encrypted[0])
	}
	for _, p := range encrypted {
		setup.tried = append(setup.tried, "key "+p+" (passphrase-protected, left to ssh-agent)")
	}
	if len(signers) == 0 && agentClient == nil {
		return setup, fmt.Errorf("%w: no ssh key configured for user %s: give a key file or use ssh-agent", ErrAuth, c.User)
	}

	setup.method = ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		all := slices.Clone(signers)
		if agentClient != nil {
			fromAgent, err := agentClient.Signers()
			if err != nil && len(all) == 0 {
				return nil, fmt.Errorf("listing keys in ssh-agent: %w", err)
			}
			all = append(all, fromAgent...)
		}
		return all, nil
	})
	return setup, nil
}

// authError explains a refused login.
func (c SSHConfig) authError(setup authSetup, err error) error {
	hint := fmt.Sprintf("check that the matching public key is in ~%s/.ssh/authorized_keys on the host", c.User)
	if c.UseAgent {
		hint += " and that ssh-agent holds the key (ssh-add -l)"
	}
	return fmt.Errorf("%w: the server refused user %q with %s; %s: %w",
		ErrAuth, c.User, strings.Join(setup.tried, ", "), hint, err)
}

// expandHome replaces a leading "~/" with the home directory.
func expandHome(p string) string {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return home + "/" + rest
}
