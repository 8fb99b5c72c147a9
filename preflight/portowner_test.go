package preflight

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0948 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:192B 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:0AAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
`

const procNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:192B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
`

func TestListeningInodes(t *testing.T) {
	tests := []struct {
		name  string
		table string
		port  int
		want  []string
	}{
		{name: "listening on 6443, established socket ignored", table: procNetTCP, port: 6443, want: []string{"2222"}},
		{name: "loopback listener", table: procNetTCP, port: 2376, want: []string{"1111"}},
		{name: "inode 0 ignored", table: procNetTCP, port: 2730},
		{name: "nothing on the port", table: procNetTCP, port: 10250},
		{name: "tcp6", table: procNetTCP6, port: 6443, want: []string{"4444"}},
		{name: "garbage", table: "x\n1 2 3\n", port: 6443},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, listeningInodes(tc.table, tc.port)); diff != "" {
				t.Errorf("listeningInodes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPortOwner(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		links map[string]string
		want  string
	}{
		{
			name:  "found through tcp6",
			files: map[string]string{"/proc/net/tcp6": procNetTCP6, "/proc/7/comm": "x\n", "/proc/300/comm": "haproxy\n"},
			links: map[string]string{"/proc/7/fd/1": "socket:[1]", "/proc/300/fd/5": "socket:[4444]"},
			want:  "haproxy (pid 300)",
		},
		{
			name:  "no comm",
			files: map[string]string{"/proc/net/tcp": procNetTCP},
			links: map[string]string{"/proc/300/fd/5": "socket:[2222]"},
			want:  "pid 300",
		},
		{
			name:  "socket in another namespace",
			files: map[string]string{"/proc/net/tcp": procNetTCP},
			links: map[string]string{"/proc/300/fd/5": "socket:[9]", "/proc/self/fd/1": "socket:[2222]"},
		},
		{name: "no /proc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := portOwner(&fakeSystem{files: tc.files, links: tc.links}, 6443)
			if got != tc.want {
				t.Errorf("portOwner = %q, want %q", got, tc.want)
			}
		})
	}
}
