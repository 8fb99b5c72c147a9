package apiclient

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFieldChanges(t *testing.T) {
	tests := []struct {
		name          string
		before, after map[string]any
		want          []FieldChange
	}{
		{
			name:   "scalar",
			before: map[string]any{"spec": map[string]any{"replicas": int64(2)}},
			after:  map[string]any{"spec": map[string]any{"replicas": int64(3)}},
			want:   []FieldChange{{Path: "spec.replicas", Old: int64(2), New: int64(3)}},
		},
		{
			name:   "a label added, its key quoted",
			before: map[string]any{"metadata": map[string]any{"name": "x"}},
			after:  map[string]any{"metadata": map[string]any{"name": "x", "labels": map[string]any{"app.kubernetes.io/name": "dns"}}},
			want:   []FieldChange{{Path: "metadata.labels", Old: nil, New: map[string]any{"app.kubernetes.io/name": "dns"}}},
		},
		{
			name:   "a key of a map changed",
			before: map[string]any{"metadata": map[string]any{"annotations": map[string]any{"kforge.io/config-hash": "sha256:a", "keep": "1"}}},
			after:  map[string]any{"metadata": map[string]any{"annotations": map[string]any{"kforge.io/config-hash": "sha256:b", "keep": "1"}}},
			want:   []FieldChange{{Path: `metadata.annotations["kforge.io/config-hash"]`, Old: "sha256:a", New: "sha256:b"}},
		},
		{
			name: "list items by position, one removed",
			before: map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "c", "args": []any{"-a", "-b"}},
			}}},
			after: map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "c", "args": []any{"-x"}},
			}}},
			want: []FieldChange{
				{Path: "spec.containers[0].args[0]", Old: "-a", New: "-x"},
				{Path: "spec.containers[0].args[1]", Old: "-b", New: nil},
			},
		},
		{
			name: "bookkeeping, status, kind and apiVersion are not changes",
			before: map[string]any{"apiVersion": "v1", "metadata": map[string]any{"name": "x", "resourceVersion": "1", "generation": int64(1),
				"uid": "u1", "creationTimestamp": "t1", "managedFields": []any{"a"}}, "status": map[string]any{"ready": int64(1)}},
			after: map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"name": "x", "resourceVersion": "2", "generation": int64(2),
				"uid": "u2", "creationTimestamp": "t2", "managedFields": []any{"b"}}, "status": map[string]any{"ready": int64(2)}},
			want: nil,
		},
		{
			name:   "a Secret's values are redacted, its keys are not",
			before: map[string]any{"kind": "Secret", "data": map[string]any{"token": "b2xk", "ca": "c2FtZQ=="}},
			after:  map[string]any{"kind": "Secret", "data": map[string]any{"token": "bmV3", "ca": "c2FtZQ==", "key": "a2V5"}, "stringData": map[string]any{"pw": "hunter2"}},
			want: []FieldChange{
				{Path: "data.key", Old: nil, New: Redacted},
				{Path: "data.token", Old: Redacted, New: Redacted},
				{Path: "stringData", Old: nil, New: map[string]any{"pw": Redacted}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FieldChanges(tc.before, tc.after)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("FieldChanges (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFieldChangeString(t *testing.T) {
	for _, tc := range []struct {
		f    FieldChange
		want string
	}{
		{FieldChange{Path: "spec.replicas", Old: int64(2), New: int64(3)}, "spec.replicas: 2 → 3"},
		{FieldChange{Path: "data.mode", Old: nil, New: "nftables"}, `data.mode: (none) → "nftables"`},
		{FieldChange{Path: "spec.x", Old: []any{"a"}, New: nil}, `spec.x: ["a"] → (none)`},
		{
			FieldChange{Path: "data.Corefile", Old: ".:53 {\n    errors\n    forward . /etc/resolv.conf\n    cache 30\n}\n", New: ".:53 {\n    errors\n    forward . 1.1.1.1\n    cache 30\n}\n"},
			`data.Corefile (line 3): "    forward . /etc/resolv.conf" → "    forward . 1.1.1.1"`,
		},
		{
			FieldChange{Path: "data.conf", Old: "a\nb\n", New: "a\nb\nc\n"},
			`data.conf (line 3): "" → "c"`,
		},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
}
