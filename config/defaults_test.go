package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "365d", want: 365 * day},
		{in: "10y", want: 10 * 365 * day},
		{in: "1y", want: 365 * day},
		{in: "0d", want: 0},
		{in: "8760h", want: 8760 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "-1h", want: -time.Hour}, // Go syntax allows it; validation rejects it
		{in: "", wantErr: true},
		{in: "5", wantErr: true},
		{in: "d", wantErr: true},
		{in: "-5d", wantErr: true},
		{in: "+5d", wantErr: true},
		{in: "5.5d", wantErr: true},
		{in: "1y2d", wantErr: true},
		{in: "1 y", wantErr: true},
		{in: "99999999999999y", wantErr: true},
		{in: "1 year", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestDurationMarshalText(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		d    time.Duration
		want string
	}{
		{10 * 365 * day, "10y"},
		{365 * day, "1y"},
		{90 * day, "90d"},
		{366 * day, "366d"},
		{36 * time.Hour, "36h0m0s"},
		{0, "0s"},
		{-day, "-24h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			b, err := Duration{tc.d}.MarshalText()
			if err != nil || string(b) != tc.want {
				t.Fatalf("MarshalText(%v) = %q, %v; want %q", tc.d, b, err, tc.want)
			}
			var back Duration
			if err := back.UnmarshalText(b); err != nil || back.Duration != tc.d {
				t.Errorf("UnmarshalText(%q) = %v, %v; want %v", b, back.Duration, err, tc.d)
			}
		})
	}
}

func TestSetDefaults(t *testing.T) {
	no := false
	c := &Cluster{
		KubernetesVersion: "1.34.1",
		ImageRepository:   "mirror.example.com/k8s/",
		Etcd:              Etcd{External: &ExternalEtcd{Endpoints: []string{"https://e:2379"}}},
		Kubelet:           Kubelet{FailSwapOn: &no},
		Addons:            Addons{DNS: DNS{Replicas: 5}},
		Hosts:             []Host{{Name: "a", Address: "192.0.2.1"}, {Name: "b", Address: "192.0.2.2", InternalAddress: "10.0.0.2", SSH: SSH{User: "me", Port: 2222}}},
	}
	SetDefaults(c)
	want := Default()
	want.KubernetesVersion = "v1.34.1"
	want.ImageRepository = "mirror.example.com/k8s"
	want.Etcd = Etcd{External: &ExternalEtcd{Endpoints: []string{"https://e:2379"}}}
	want.Kubelet.FailSwapOn = &no
	want.Addons.DNS.Replicas = 5
	want.Hosts = []Host{
		{Name: "a", Address: "192.0.2.1", InternalAddress: "192.0.2.1", SSH: SSH{User: "root", Port: 22}},
		{Name: "b", Address: "192.0.2.2", InternalAddress: "10.0.0.2", SSH: SSH{User: "me", Port: 2222}},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("SetDefaults mismatch (-want +got):\n%s", diff)
	}

	// Defaulting twice changes nothing.
	SetDefaults(c)
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("second SetDefaults changed the cluster (-want +got):\n%s", diff)
	}
}
