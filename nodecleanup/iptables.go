package nodecleanup

import (
	"bufio"
	"bytes"
	"strings"
)

// ownedChain matches the iptables chains kube-proxy, the kubelet and flannel create.
func ownedChain(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "FLANNEL-")
}

// dropChains removes from iptables-save output every chain that owned matches, every rule
// in such a chain and every rule that jumps to one. It returns the rest and how many lines
// it dropped.
func dropChains(save []byte, owned func(string) bool) ([]byte, int) {
	var out bytes.Buffer
	removed := 0
	s := bufio.NewScanner(bytes.NewReader(save))
	s.Buffer(make([]byte, 1<<20), 1<<24)
	for s.Scan() {
		line := s.Text()
		fields := strings.Fields(line)
		drop := false
		switch {
		case strings.HasPrefix(line, ":") && len(fields) > 0:
			drop = owned(strings.TrimPrefix(fields[0], ":"))
		case strings.HasPrefix(line, "-A ") && len(fields) > 1:
			drop = owned(fields[1])
			for i := 2; i+1 < len(fields) && !drop; i++ {
				if (fields[i] == "-j" || fields[i] == "-g" || fields[i] == "--jump" || fields[i] == "--goto") && owned(fields[i+1]) {
					drop = true
				}
			}
		}
		if drop {
			removed++
			continue
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes(), removed
}
