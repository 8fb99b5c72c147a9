package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// FuzzDecode feeds arbitrary documents to Decode. Beyond not panicking, it checks that:
//   - a success is a cluster that validates again and whose derived helpers work;
//   - a failure is a *DecodeError or *ValidationError with at least one problem, every line
//     of its message naming the file, and every validation message saying what is wanted;
//   - Decode is deterministic;
//   - the shape check never rejects a document go-toml's strict decoder accepts, except where
//     it is stricter on purpose (see docIndex.stricter).
func FuzzDecode(f *testing.F) {
	f.Add(PrintDefaults())
	for _, seed := range []string{
		"",
		"name = \"prod\"\nnmae = 1\n[etcd.locall]\n[[hosts]]\nadress = 2\n",
		"[networking]\npod_cidr = \"10.244.0.0/33\"\nservice_cidr = \"10.244.0.0/16\"\n",
		"hosts = [{ name = \"a\", address = \"10.0.0.1\", roles = [\"control-plane\", 1] }]\n",
		"[[hosts]]\nname = \"a\"\n[hosts.ssh]\nport = 0\n[[hosts]]\n[[hosts.x]]\n",
		"[certificates]\nca_validity = 5\ncert_validity = \"11y\"\n",
		"[kubelet]\nmax_pods = 0x7fffffffff\nsystem_reserved = { cpu = \"-1\" }\n",
		"[etcd]\nlocal = {}\nexternal = { endpoints = [\"http://x\"] }\n",
		"[apiserver]\nextra_args = { \"--v\" = \"2\" }\nextra_volumes = [{ name = \"A\" }]\n",
		"name = \"a\"\nname = \"b\"\n",
		"[networking\n",
		"a.b.c = [[1], {x = 1}]\n[a]\n",
		"[hosts]\nname = \"a\"\n",
		"[hosts.ssh]\nport = 1\n",
		"hosts.name = \"a\"\nNAME = \"b\"\n",
		"[[hosts]]\nlabels.\"example.com/x\" = \"y\"\ntaints = [\":\", \"=:NoSchedule\"]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data, "cluster.toml")
		if err == nil {
			if c == nil {
				t.Fatal("Decode returned neither a cluster nor an error")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Decode accepted a cluster that does not validate: %v", err)
			}
			c.Endpoint()
			c.EndpointURL()
			for _, n := range []int{1, 10} {
				if _, err := c.ServiceIP(n); err != nil {
					t.Fatalf("ServiceIP(%d) of a valid cluster: %v", n, err)
				}
			}
			c.Image(ImageAPIServer)
		} else {
			checkDecodeErr(t, err)
		}

		_, err2 := Decode(data, "cluster.toml")
		if errString(err) != errString(err2) {
			t.Fatalf("Decode is not deterministic:\n%v\n---\n%v", err, err2)
		}

		var viaTOML Cluster
		if tomlErr := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&viaTOML); tomlErr == nil {
			idx, syntax := indexDocument(data)
			if syntax != nil {
				t.Fatalf("go-toml decodes the document but the shape check sees a syntax error: %s", syntax.Message)
			}
			if len(idx.problems) != idx.stricter {
				t.Fatalf("go-toml decodes the document but the shape check rejects it: %+v", idx.problems)
			}
		}
	})
}

func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	var de *DecodeError
	var ve *ValidationError
	switch {
	case errors.As(err, &de):
		if len(de.Problems) == 0 {
			t.Fatal("DecodeError without problems")
		}
		for _, p := range de.Problems {
			if p.Message == "" {
				t.Fatalf("problem without a message: %+v", p)
			}
		}
	case errors.As(err, &ve):
		if len(ve.Errors) == 0 {
			t.Fatal("ValidationError without errors")
		}
		for _, fe := range ve.Errors {
			if fe.Path == "" || !strings.Contains(fe.Message, "want") {
				t.Fatalf("field error without a path or without saying what is wanted: %+v", fe)
			}
		}
	default:
		t.Fatalf("Decode error is %T, want *DecodeError or *ValidationError: %v", err, err)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, "cluster.toml:") {
			t.Fatalf("error line %q does not start with the file name", line)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
