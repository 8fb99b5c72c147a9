package testutil

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func dialTestServer(t *testing.T, s *SSHServer, key SSHKey) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            "tester",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         5 * time.Second,
	})
	if err != nil {
		t.Fatalf("dialling test server: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSSHServerExec(t *testing.T) {
	key := NewSSHKey(t, "")
	s := NewSSHServer(t, SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}, Env: []string{"KFORGE_TEST=from-env"}})
	c := dialTestServer(t, s, key)
	tests := []struct {
		name       string
		cmd        string
		stdin      string
		wantStdout string
		wantStatus int
	}{
		{"stdout and env", "echo $KFORGE_TEST", "", "from-env\n", 0},
		{"stdin", "tr a-z A-Z", "shout", "SHOUT", 0},
		{"exit status", "exit 7", "", "", 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			sess.Stdin = strings.NewReader(tc.stdin)
			out, err := sess.Output(tc.cmd)
			status := 0
			var exitErr *ssh.ExitError
			if errors.As(err, &exitErr) {
				status = exitErr.ExitStatus()
			} else if err != nil {
				t.Fatalf("running %q: %v", tc.cmd, err)
			}
			if string(out) != tc.wantStdout || status != tc.wantStatus {
				t.Errorf("got stdout %q, status %d; want %q, %d", out, status, tc.wantStdout, tc.wantStatus)
			}
		})
	}
	if got := s.ExecCount(); got != len(tests) {
		t.Errorf("ExecCount = %d, want %d", got, len(tests))
	}
	if users := s.Users(); len(users) == 0 || users[0] != "tester" {
		t.Errorf("Users = %q, want tester", users)
	}
}

func TestSSHServerAuth(t *testing.T) {
	key := NewSSHKey(t, "")
	tests := []struct {
		name string
		opts SSHServerOptions
	}{
		{"key not authorized", SSHServerOptions{}},
		{"RejectAuth", SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}, RejectAuth: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSSHServer(t, tc.opts)
			_, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
				User:            "tester",
				Auth:            []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
				HostKeyCallback: ssh.FixedHostKey(s.HostKey),
				Timeout:         5 * time.Second,
			})
			if err == nil {
				t.Fatal("login succeeded, want it refused")
			}
		})
	}
}

func TestSSHServerForwarding(t *testing.T) {
	key := NewSSHKey(t, "")
	s := NewSSHServer(t, SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	c := dialTestServer(t, s, key)

	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		conn, err := echo.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(conn, conn)
	}()

	conn, err := c.Dial("tcp", echo.Addr().String())
	if err != nil {
		t.Fatalf("forwarding to a loopback address: %v", err)
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Errorf("echo through the tunnel = %q, %v; want ping", buf, err)
	}
	conn.Close()
	if s.ForwardCount() != 1 {
		t.Errorf("ForwardCount = %d, want 1", s.ForwardCount())
	}

	// 0.0.0.0 is not a loopback address, but even if the check regressed,
	// dialling it would stay on this machine.
	if _, err := c.Dial("tcp", "0.0.0.0:1"); err == nil {
		t.Error("forwarding to a non-loopback address was allowed")
	}
}

func TestSSHServerCloseStopsCommands(t *testing.T) {
	key := NewSSHKey(t, "")
	s := NewSSHServer(t, SSHServerOptions{AuthorizedKeys: []ssh.PublicKey{key.Public}})
	c := dialTestServer(t, s, key)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("sleep 30"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s with a command running")
	}
	if err := sess.Wait(); err == nil {
		t.Error("the session's command finished normally after Close, want it killed")
	}
}
