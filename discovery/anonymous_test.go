package discovery

import (
	"slices"
	"testing"

	"github.com/kforge/kforge/manifests"
)

// Discovery reads cluster-info before it has credentials: the apiserver's anonymous
// access (security.restrict_anonymous) must include that exact path.
func TestClusterInfoIsAnonymouslyReadable(t *testing.T) {
	if !slices.Contains(manifests.AnonymousPaths, ClusterInfoPath) {
		t.Errorf("manifests.AnonymousPaths %q lacks %s: joining nodes could not discover the cluster", manifests.AnonymousPaths, ClusterInfoPath)
	}
}
