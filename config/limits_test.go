package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadBounded is issue 10, item 20: config validate -f /dev/zero read 2.9 GB in 20 s.
func TestLoadBounded(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	// A valid document just over the limit: a comment pads it.
	doc := "name = \"lab\"\n#" + strings.Repeat("x", MaxFileSize) + "\n"
	if err := os.WriteFile(big, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Load(%d bytes) = %v, want ErrTooLarge", len(doc), err)
	}
	atLimit := filepath.Join(dir, "limit.toml")
	doc = "name = \"lab\"\n#"
	doc += strings.Repeat("x", MaxFileSize-len(doc)-1) + "\n"
	if err := os.WriteFile(atLimit, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(atLimit); err != nil {
		t.Errorf("Load(%d bytes) = %v, want a file of exactly MaxFileSize accepted", len(doc), err)
	}

	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skipf("this machine has no /dev/zero to read: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load("/dev/zero"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("Load(/dev/zero) = %v, want ErrTooLarge", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load(/dev/zero) still reading after 10s")
	}
}

// TestErrorsBounded is issue 10, item 20: 10 MB of unknown keys gave 200,000 error lines,
// and a 10 MB value came back as a 10 MB error.
func TestErrorsBounded(t *testing.T) {
	var b strings.Builder
	for i := range 120 {
		fmt.Fprintf(&b, "unknown%d = 1\n", i)
	}
	_, err := Decode([]byte(b.String()), "cluster.toml")
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != MaxReported+1 {
		t.Errorf("%d error lines, want %d problems and a summary", len(lines), MaxReported)
	}
	if last := lines[len(lines)-1]; last != "cluster.toml: and 70 more problems" {
		t.Errorf("last line = %q, want the count of the rest", last)
	}

	var hosts strings.Builder
	hosts.WriteString("[networking]\npod_cidr = \"10.0.0.0/8\"\n")
	for i := range 60 {
		fmt.Fprintf(&hosts, "[[hosts]]\nname = \"h%d\"\naddress = \"bad address\"\nroles = [\"control-plane\"]\n", i)
	}
	_, err = Decode([]byte(hosts.String()), "cluster.toml")
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) <= MaxReported {
		t.Fatalf("Decode = %v, want more than %d validation errors", err, MaxReported)
	}
	lines = strings.Split(err.Error(), "\n")
	if len(lines) != MaxReported+1 || !strings.HasSuffix(lines[MaxReported], fmt.Sprintf("and %d more problems", len(ve.Errors)-MaxReported)) {
		t.Errorf("validation error has %d lines ending %q, want %d and a count of the rest", len(lines), lines[len(lines)-1], MaxReported+1)
	}

	huge := strings.Repeat("A", 1<<20)
	for name, doc := range map[string]string{
		"value":       "name = \"" + huge + "\"\n",
		"unknown key": huge + " = 1\n",
		"map key":     "[kubelet.extra_args]\n" + huge + " = 1\n",
		"label":       "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"control-plane\"]\nlabels = { a = \"" + huge + "\" }\n",
	} {
		_, err := Decode([]byte(doc), "cluster.toml")
		if err == nil {
			t.Errorf("%s: Decode accepted a 1 MiB value", name)
			continue
		}
		if n := len(err.Error()); n > 1000 {
			t.Errorf("%s: error is %d bytes long, want the value cut short: %.300s", name, n, err)
		}
	}
}
