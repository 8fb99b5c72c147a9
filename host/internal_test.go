package host

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name string
		cmd  Cmd
		sudo bool
		want string
	}{
		{"args", Cmd{Args: []string{"echo", "a b"}}, false, "echo 'a b'"},
		{"script", Cmd{Script: "echo $HOME"}, false, "sh -c 'echo $HOME'"},
		{"args under sudo", Cmd{Args: []string{"echo", "a b"}}, true, `sudo -n -- sh -c 'echo '\''a b'\'''`},
		{"script under sudo", Cmd{Script: "cd /tmp && ls"}, true, "sudo -n -- sh -c 'cd /tmp && ls'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := commandLine(tc.cmd, tc.sudo); got != tc.want {
				t.Errorf("commandLine = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCmdDisplay(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name string
		cmd  Cmd
		want string
	}{
		{"args", Cmd{Args: []string{"kubeadm", "reset", "-f"}}, "kubeadm reset -f"},
		{"script whitespace collapsed", Cmd{Script: "set -e\n  echo a\n\techo b\n"}, "set -e echo a echo b"},
		{"display wins", Cmd{Args: []string{"secret-arg"}, Display: "join"}, "join"},
		{"long is abbreviated", Cmd{Script: long}, long[:maxDisplay-3] + "..."},
		{"stdin never shown", Cmd{Args: []string{"cat"}, Stdin: strings.NewReader("secret")}, "cat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cmd.display(); got != tc.want {
				t.Errorf("display = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		n      int
		want   string
	}{
		{"empty", nil, 3, ""},
		{"fewer lines than n", []string{"a\nb\n"}, 3, "a\nb"},
		{"last n lines across writes", []string{"1\n2\n", "3\n4", "\n5\n"}, 2, "4\n5"},
		{"no trailing newline", []string{"a\nb"}, 5, "a\nb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newTailBuffer()
			for _, w := range tc.writes {
				b.Write([]byte(w))
			}
			if got := b.lines(tc.n); got != tc.want {
				t.Errorf("lines(%d) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		b := newTailBuffer()
		for range 1000 {
			b.Write([]byte(strings.Repeat("y", 100) + "\n"))
		}
		b.Write([]byte(strings.Repeat("z", 3*b.max)))
		b.Write([]byte("\nlast\n"))
		if len(b.buf) > b.max || !strings.HasSuffix(b.lines(1), "last") {
			t.Errorf("buffer holds %d bytes (max %d), last line %q", len(b.buf), b.max, b.lines(1))
		}
	})
}

func TestExitErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *ExitError
		want string
	}{
		{
			name: "code and stderr",
			err:  &ExitError{Host: "h1", Cmd: "systemctl start kubelet", Code: 1, Stderr: "Failed to start\nsee journalctl"},
			want: "command \"systemctl start kubelet\" on h1 exited with code 1; stderr:\n    Failed to start\n    see journalctl",
		},
		{
			name: "no stderr",
			err:  &ExitError{Host: "h2", Cmd: "false", Code: 1},
			want: `command "false" on h2 exited with code 1`,
		},
		{
			name: "signal",
			err:  &ExitError{Host: "h3", Cmd: "sleep 30", Code: 137, Signal: "KILL"},
			want: `command "sleep 30" on h3 was killed by signal KILL`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.err.Error()); diff != "" {
				t.Errorf("Error() differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOwnerMatches(t *testing.T) {
	st := fileState{exists: true, uid: "0", gid: "990", user: "root", group: "etcd"}
	tests := []struct {
		owner string
		want  bool
	}{
		{"", true},
		{"0:990", true},
		{"root:etcd", true},
		{"root", true},
		{"0", true},
		{":etcd", true},
		{"root:", true},
		{"0:0", false},
		{"etcd:etcd", false},
		{"1000", false},
	}
	for _, tc := range tests {
		if got := ownerMatches(tc.owner, st); got != tc.want {
			t.Errorf("ownerMatches(%q) = %v, want %v", tc.owner, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		out     string
		want    fileState
		wantErr bool
	}{
		{name: "absent", out: "absent\n", want: fileState{}},
		{
			name: "regular file",
			out:  sum + "\n640 0 990 root etcd\n",
			want: fileState{exists: true, sum: sum, mode: 0o640, uid: "0", gid: "990", user: "root", group: "etcd"},
		},
		{
			name: "setuid and sticky",
			out:  sum + "\n5755 0 0 root root\n",
			want: fileState{exists: true, sum: sum, mode: 0o755 | fs.ModeSetuid | fs.ModeSticky, uid: "0", gid: "0", user: "root", group: "root"},
		},
		{name: "garbage", out: "sh: sha256sum: not found\n", wantErr: true},
		{name: "short sum", out: "abc\n644 0 0 root root\n", wantErr: true},
		{name: "bad mode", out: sum + "\nrw-r--r-- 0 0 root root\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.out))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStat error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(fileState{})); diff != "" {
				t.Errorf("parseStat differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnixMode(t *testing.T) {
	for _, m := range []fs.FileMode{0, 0o644, 0o755 | fs.ModeSetuid, 0o2775&0o777 | fs.ModeSetgid, 0o1777&0o777 | fs.ModeSticky} {
		if got := fileModeFromUnix(unixMode(m)); got != m {
			t.Errorf("fileModeFromUnix(unixMode(%v)) = %v", m, got)
		}
	}
	if got := unixMode(0o755 | fs.ModeSetuid); got != 0o4755 {
		t.Errorf("unixMode(setuid 0755) = %o, want 4755", got)
	}
}

func TestSSHConfigDefaults(t *testing.T) {
	t.Setenv("HOME", "/home/op")
	got, err := SSHConfig{Address: "10.0.0.5", KeyFiles: []string{"~/.ssh/id_ed25519"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "10.0.0.5" || got.Port != 22 || got.User != "root" || got.KnownHostsPath != "/home/op/.ssh/known_hosts" ||
		got.KeepAlive != DefaultKeepAlive || got.DialTimeout != DefaultDialTimeout || got.MaxSessions != DefaultMaxSessions || got.Logger == nil {
		t.Errorf("defaults not applied: %+v", got)
	}
	if _, err := (SSHConfig{}).withDefaults(); err == nil {
		t.Error("config without address accepted")
	}
	if _, err := (SSHConfig{Address: "x", Port: 70000}).withDefaults(); err == nil {
		t.Error("port 70000 accepted")
	}
	if p := expandHome("~/.ssh/id_ed25519"); p != "/home/op/.ssh/id_ed25519" {
		t.Errorf("expandHome = %q", p)
	}
}

func TestBastionConfigInherits(t *testing.T) {
	onNew := func(string, string) {}
	target := SSHConfig{
		Address: "10.0.0.5", KnownHostsPath: "/kh", KeyFiles: []string{"/k"}, UseAgent: true,
		AcceptNewHostKeys: true, OnNewHostKey: onNew,
		Bastion: &SSHConfig{Address: "bastion.example", User: "jump"},
	}
	b := target.bastionConfig()
	if b.Address != "bastion.example" || b.User != "jump" || b.KnownHostsPath != "/kh" ||
		!cmp.Equal(b.KeyFiles, []string{"/k"}) || !b.UseAgent || !b.AcceptNewHostKeys || b.OnNewHostKey == nil {
		t.Errorf("bastion config = %+v", b)
	}
	if target.Bastion.KnownHostsPath != "" {
		t.Error("bastionConfig modified the caller's bastion config")
	}
}

func TestCmdValidate(t *testing.T) {
	if err := (Cmd{Args: []string{"x"}}).validate(); err != nil {
		t.Errorf("valid Args rejected: %v", err)
	}
	for _, c := range []Cmd{{}, {Args: []string{"x"}, Script: "y"}} {
		if err := c.validate(); err == nil {
			t.Errorf("validate(%+v) = %v, want an error", c, err)
		}
	}
}
