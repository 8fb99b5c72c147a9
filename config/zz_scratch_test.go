package config

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestScratch(t *testing.T) {
	docs := []string{
		"name = 'x'\nfoo = 1\n[etcd.locall]\nx=1\n[[hosts]]\nname='a'\nbar=2\n[[hosts]]\nname='b'\nssh = { port = 22, baz = 1 }\n",
		"name = 1\n",
		"[certificates]\nca_validity = 'abc'\n",
		"[certificates]\nca_validity = 5\n",
		"[[hosts]]\n[[hosts]]\nssh.port = 'x'\n",
		"[kubelet]\nmax_pods = 99999999999\n",
		"name = \n",
		"hosts = [{name='a', roles=['x', 1]}]\n",
		"etcd = 3\n",
		"[networking]\n[networking]\n",
		"[kubelet.extra_args]\na = 1\n",
	}
	for _, d := range docs {
		var c Cluster
		err := toml.NewDecoder(bytesReader(d)).DisallowUnknownFields().Decode(&c)
		fmt.Printf("=== %q\nerr=%v (%T)\n", d, err, err)
		var de *toml.DecodeError
		var se *toml.StrictMissingError
		if errors.As(err, &se) {
			for _, e := range se.Errors {
				l, col := e.Position()
				fmt.Printf("  strict %d:%d key=%q msg=%v\n", l, col, e.Key(), e.Error())
			}
		} else if errors.As(err, &de) {
			l, col := de.Position()
			fmt.Printf("  decode %d:%d key=%q msg=%v\n%s\n", l, col, de.Key(), de.Error(), de.String())
		}
	}
}
