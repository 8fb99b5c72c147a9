package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Render returns pod as YAML: apiVersion v1 and kind Pod set, keys sorted, no status. The
// same pod always renders to the same bytes.
func Render(pod *corev1.Pod) ([]byte, error) {
	if pod == nil {
		return nil, errors.New("rendering manifest: no pod")
	}
	p := pod.DeepCopy()
	p.APIVersion, p.Kind = "v1", "Pod"
	p.Status = corev1.PodStatus{}
	j, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("rendering manifest %s: %w", p.Name, err)
	}
	// Drop the empty status the struct always encodes; numbers stay exact.
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("rendering manifest %s: %w", p.Name, err)
	}
	delete(m, "status")
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("rendering manifest %s: %w", p.Name, err)
	}
	return out, nil
}

// Parse reads a static pod manifest. Unknown fields are ignored, so manifests written by
// newer tools still parse; the document must be a v1 Pod.
func Parse(data []byte) (*corev1.Pod, error) {
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if pod.APIVersion != "v1" || pod.Kind != "Pod" {
		return nil, fmt.Errorf("parsing manifest: got apiVersion %q kind %q, want v1 Pod", pod.APIVersion, pod.Kind)
	}
	return &pod, nil
}
