package preflight

import (
	"fmt"
	"strconv"
	"strings"
)

// tcpListen is the state number of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// portOwner names the process listening on a TCP port, as "nginx (pid 42)", or returns ""
// when it cannot tell: the socket belongs to another network or PID namespace, or /proc
// is not readable. It reads /proc/net/tcp{,6} for the socket's inode, then looks for the
// process holding that inode among /proc/<pid>/fd. It runs only when a check already
// fails, so its cost (one readlink per open file on the host) does not slow a clean run.
func portOwner(sys System, port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := sys.ReadFile(f)
		if err != nil {
			continue
		}
		for _, ino := range listeningInodes(string(b), port) {
			inodes["socket:["+ino+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	pids, err := sys.ReadDir("/proc")
	if err != nil {
		return ""
	}
	for _, pid := range pids {
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		fdDir := "/proc/" + pid + "/fd"
		fds, err := sys.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := sys.Readlink(fdDir + "/" + fd)
			if err != nil || !inodes[target] {
				continue
			}
			comm, err := sys.ReadFile("/proc/" + pid + "/comm")
			if err != nil || strings.TrimSpace(string(comm)) == "" {
				return "pid " + pid
			}
			return fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), pid)
		}
	}
	return ""
}

// listeningInodes returns the inodes of the sockets listening on port in the content of
// /proc/net/tcp or /proc/net/tcp6, whose lines read
// "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...",
// with addresses as hex "ADDR:PORT".
func listeningInodes(table string, port int) []string {
	var out []string
	for line := range strings.Lines(table) {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != tcpListen {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port || f[9] == "0" {
			continue
		}
		out = append(out, f[9])
	}
	return out
}
