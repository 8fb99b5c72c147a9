package crashpoint

import "testing"

// TestHereIsHarmlessInANormalBuild: without the crashpoints tag, no point kills kforge,
// whatever the environment says (this test process would die otherwise).
func TestHereIsHarmlessInANormalBuild(t *testing.T) {
	t.Setenv("KFORGE_CRASHPOINT", "service/kubelet/written")
	Here("service/kubelet/written")
}
