package testbed

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"h1", true},
		{"control-plane-1", true},
		{"a", true},
		{"", false},
		{"1h", false},
		{"H1", false},
		{"h_1", false},
		{"h1-", false},
		{"h1.example", false},
		{strings.Repeat("a", 33), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := validName(tc.name); (err == nil) != tc.ok {
				t.Errorf("validName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

func TestParseSubnet(t *testing.T) {
	tests := []struct {
		subnet  string
		want    string
		wantErr string
	}{
		{subnet: "10.77.0.0/24", want: "10.77.0.0/24"},
		{subnet: "10.77.0.5/24", want: "10.77.0.0/24"},
		{subnet: "192.168.50.0/24", want: "192.168.50.0/24"},
		{subnet: "10.244.3.0/24", wantErr: "overlaps 10.244.0.0/16"},
		{subnet: "10.100.0.0/24", wantErr: "overlaps 10.96.0.0/12"},
		{subnet: "8.8.8.0/24", wantErr: "not a private"},
		{subnet: "10.77.0.0/28", wantErr: "between a /16 and a /27"},
		{subnet: "fd00::/64", wantErr: "not IPv4"},
		{subnet: "nonsense", wantErr: "parsing"},
	}
	for _, tc := range tests {
		t.Run(tc.subnet, func(t *testing.T) {
			got, err := parseSubnet(tc.subnet)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseSubnet(%q) = %v, %v; want an error containing %q", tc.subnet, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("parseSubnet(%q) = %v, %v; want %s", tc.subnet, got, err, tc.want)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	p := netip.MustParsePrefix("10.77.0.0/24")
	if got := gateway(p).String(); got != "10.77.0.1" {
		t.Errorf("gateway = %s, want 10.77.0.1", got)
	}
	if got := hostAddr(p, 1).String(); got != "10.77.0.11" {
		t.Errorf("h1 = %s, want 10.77.0.11", got)
	}
	if got := hostAddr(p, maxIndex(p)).String(); got != "10.77.0.254" {
		t.Errorf("last host = %s, want 10.77.0.254", got)
	}
	wide := netip.MustParsePrefix("10.77.0.0/16")
	if got := hostAddr(wide, 300).String(); got != "10.77.1.54" {
		t.Errorf("host 300 in a /16 = %s, want 10.77.1.54", got)
	}
}

func TestAllocIndex(t *testing.T) {
	st := &state{Subnet: "10.77.0.0/24", Hosts: []hostState{{Name: "h1", Index: 1}, {Name: "cp", Index: 244}}}
	tests := []struct {
		name    string
		want    int
		wantErr string
	}{
		{name: "h2", want: 2},
		{name: "h244", wantErr: "which host cp has"},
		{name: "h245", wantErr: "does not fit"},
		{name: "worker", want: 243}, // names by hand take addresses from the top
		{name: "h01", want: 243},    // not a conventional hN name
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := allocIndex(st, tc.name, 244)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("allocIndex(%s) = %d, %v; want an error containing %q", tc.name, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("allocIndex(%s) = %d, %v; want %d", tc.name, got, err, tc.want)
			}
		})
	}
}

func TestEtcHosts(t *testing.T) {
	p := netip.MustParsePrefix("10.77.0.0/24")
	got := string(etcHosts([]Host{{Name: "h1", Address: hostAddr(p, 1)}, {Name: "h2", Address: hostAddr(p, 2)}}))
	for _, line := range []string{"127.0.0.1\tlocalhost\n", "10.77.0.11\th1\n", "10.77.0.12\th2\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("/etc/hosts lacks %q:\n%s", line, got)
		}
	}
}

func TestSSHDConfigListensOnTheHostOnly(t *testing.T) {
	cfg := string(sshdConfig(Host{Name: "h3", Address: netip.MustParseAddr("10.77.0.13")}))
	for _, want := range []string{"ListenAddress 10.77.0.13:22\n", "PasswordAuthentication no\n", "PermitRootLogin prohibit-password\n", "Subsystem sftp "} {
		if !strings.Contains(cfg, want) {
			t.Errorf("sshd_config lacks %q:\n%s", want, cfg)
		}
	}
}

func TestNextBackoff(t *testing.T) {
	tests := []struct {
		last, ran, want time.Duration
	}{
		{0, time.Millisecond, restartMin},
		{restartMin, time.Millisecond, 2 * restartMin},
		{4 * time.Second, time.Second, restartMax},
		{restartMax, time.Second, restartMax},
		{restartMax, restartReset, restartMin}, // a long run starts over
	}
	for _, tc := range tests {
		if got := nextBackoff(tc.last, tc.ran); got != tc.want {
			t.Errorf("nextBackoff(%s, %s) = %s, want %s", tc.last, tc.ran, got, tc.want)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/a\040b\011c\134`); got != "/a b\tc\\" {
		t.Errorf("got %q", got)
	}
}

func TestProcIDRoundTrip(t *testing.T) {
	id, err := readProcID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !id.alive() {
		t.Fatal("this process is not alive by its own procID")
	}
	back, err := parseProcID(id.String())
	if err != nil || back != id {
		t.Fatalf("parseProcID(%q) = %v, %v; want %v", id.String(), back, err, id)
	}
	stale := procID{Pid: id.Pid, Start: id.Start + 1}
	if stale.alive() {
		t.Error("a procID with another start time counts as alive: pid reuse would kill a stranger")
	}
}

func TestKnownHostsVerifiesEachHostsKey(t *testing.T) {
	tb := &Testbed{dir: t.TempDir(), st: &state{Version: stateVersion, Subnet: DefaultSubnet,
		Hosts: []hostState{{Name: "h1", Index: 1}, {Name: "h2", Index: 2}}}}
	keys := map[string]ssh.PublicKey{}
	for _, h := range tb.Hosts() {
		path := filepath.Join(tb.hostFS(h.Name), "etc/ssh/ssh_host_ed25519_key")
		if err := ensureKeyPair(path, "root@"+h.Name); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			t.Fatalf("the host key is not a valid OpenSSH key: %v", err)
		}
		keys[h.Name] = signer.PublicKey()
	}
	if err := tb.writeKnownHosts(tb.Hosts()); err != nil {
		t.Fatal(err)
	}
	check, err := knownhosts.New(tb.KnownHosts())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range tb.Hosts() {
		remote := &net.TCPAddr{IP: h.Address.AsSlice(), Port: SSHPort}
		for _, name := range []string{h.Name + ":22", h.SSHAddr()} {
			if err := check(name, remote, keys[h.Name]); err != nil {
				t.Errorf("%s with its own key: %v", name, err)
			}
		}
	}
	h1 := &net.TCPAddr{IP: net.IPv4(10, 77, 0, 11), Port: SSHPort}
	if err := check("10.77.0.11:22", h1, keys["h2"]); err == nil {
		t.Error("h1's address accepted h2's key")
	}
}

func TestRemoveMountpointsKeepsWhatOthersWrote(t *testing.T) {
	dir := t.TempDir()
	st := &state{}
	empty, full, sub := filepath.Join(dir, "empty"), filepath.Join(dir, "full"), filepath.Join(dir, "d", "sub")
	st.CreatedPaths = []string{empty, full, filepath.Join(dir, "d"), sub}
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(full, []byte("someone's data"), 0o644)
	os.MkdirAll(sub, 0o755)
	err := removeMountpoints(st)
	if err == nil || !strings.Contains(err.Error(), full) {
		t.Errorf("removeMountpoints = %v, want an error naming %s", err, full)
	}
	var left []string
	for _, p := range st.CreatedPaths {
		if _, err := os.Lstat(p); err == nil {
			left = append(left, p)
		}
	}
	if diff := cmp.Diff([]string{full}, left); diff != "" {
		t.Errorf("what is left (-want +got):\n%s", diff)
	}
}

func TestPrivatePath(t *testing.T) {
	tb := &Testbed{dir: "/state", st: &state{Version: stateVersion, Subnet: DefaultSubnet, Hosts: []hostState{{Name: "h1", Index: 1}}}}
	h, _ := tb.Host("h1")
	tests := map[string]string{
		"/etc/kubernetes/admin.conf": "/state/hosts/h1/fs/etc/kubernetes/admin.conf",
		"/etc/hosts":                 "/state/hosts/h1/fs/etc/hosts",
		"/etc/kubernetes-other":      "",
		"/usr/bin/containerd":        "",
	}
	for in, want := range tests {
		if got := h.PrivatePath(in); got != want {
			t.Errorf("PrivatePath(%s) = %q, want %q", in, got, want)
		}
	}
}
