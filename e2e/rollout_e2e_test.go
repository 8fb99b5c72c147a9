//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kforge/kforge/e2e/testbed"
)

// apiWatch samples, every 200 ms, each control plane's apiserver /readyz and one API read
// through the cluster's endpoint, for as long as a rollout runs.
type apiWatch struct {
	mu sync.Mutex
	// samples is how many rounds ran; down counts the rounds by how many apiservers did
	// not answer ok in them.
	samples int
	down    map[int]int
	// hostDown counts, by control plane, the rounds in which it was down.
	hostDown map[string]int
	// reads through the endpoint that succeeded and failed.
	readsOK, readsFailed int
	// reads that try each apiserver in turn until one answers, as a client-side load
	// balancer would: one fails only when every apiserver failed it.
	anyOK, anyFailed int
	// HTTP requests to serviceURL (a Service's NodePort), when it is set.
	serviceURL       string
	svcOK, svcFailed int
	stop             func()
}

// watchAPIServers starts an apiWatch with the admin kubeconfig at admin; serviceURL, when
// not empty, is an HTTP URL each round also gets (a Service through a NodePort).
func watchAPIServers(t *testing.T, ctx context.Context, admin string, cps []testbed.Host, serviceURL string) *apiWatch {
	t.Helper()
	base, err := clientcmd.BuildConfigFromFlags("", admin)
	if err != nil {
		t.Fatal(err)
	}
	base.Timeout = 2 * time.Second
	base.QPS, base.Burst = 50, 100 // 5 requests a second per client: never held by client-go's limiter
	endpoint, err := kubernetes.NewForConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	each := map[string]kubernetes.Interface{}
	for _, h := range cps {
		rc := *base
		rc.Host = "https://" + net.JoinHostPort(h.Address.String(), "6443")
		cs, err := kubernetes.NewForConfig(&rc)
		if err != nil {
			t.Fatal(err)
		}
		each[h.Name] = cs
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &apiWatch{down: map[int]int{}, hostDown: map[string]int{}, serviceURL: serviceURL}
	names := slices.Sorted(maps.Keys(each))
	httpc := &http.Client{Timeout: 2 * time.Second}
	done := make(chan struct{})
	w.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var down []string
			for name, cs := range each {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
					if err != nil || string(body) != "ok" {
						mu.Lock()
						down = append(down, name)
						mu.Unlock()
					}
				}()
			}
			_, readErr := endpoint.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
			anyErr := fmt.Errorf("no apiserver")
			for _, name := range names {
				if _, anyErr = each[name].CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); anyErr == nil {
					break
				}
			}
			svcErr := error(nil)
			if serviceURL != "" {
				svcErr = getOK(ctx, httpc, serviceURL)
			}
			wg.Wait()
			if ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			w.samples++
			w.down[len(down)]++
			for _, n := range down {
				w.hostDown[n]++
			}
			if readErr != nil {
				w.readsFailed++
			} else {
				w.readsOK++
			}
			if anyErr != nil {
				w.anyFailed++
			} else {
				w.anyOK++
			}
			if serviceURL != "" {
				if svcErr != nil {
					w.svcFailed++
				} else {
					w.svcOK++
				}
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// maxDown is the most apiservers that were down at once in any round.
func (w *apiWatch) maxDown() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := 0
	for n := range w.down {
		m = max(m, n)
	}
	return m
}

func (w *apiWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var each []string
	for _, n := range slices.Sorted(maps.Keys(w.hostDown)) {
		each = append(each, fmt.Sprintf("%s %d", n, w.hostDown[n]))
	}
	s := fmt.Sprintf("%d rounds of /readyz on each control plane: %d with none down, %d with one down (%s), %d with two or more down; reads through the endpoint: %d ok, %d failed; reads through any apiserver: %d ok, %d failed",
		w.samples, w.down[0], w.down[1], strings.Join(each, ", "), w.samples-w.down[0]-w.down[1], w.readsOK, w.readsFailed, w.anyOK, w.anyFailed)
	if w.serviceURL != "" {
		s += fmt.Sprintf("; HTTP to the Service: %d ok, %d failed", w.svcOK, w.svcFailed)
	}
	return s
}

// failures is how many reads through any apiserver and requests to the Service failed.
func (w *apiWatch) failures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.anyFailed + w.svcFailed
}

// getOK gets url and wants 200 OK.
func getOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
