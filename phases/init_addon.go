package phases

import (
	"context"

	"github.com/kforge/kforge/addons"
	"github.com/kforge/kforge/internal/apiclient"
)

// AddonPhase is the "addon" phase: one sub-phase per add-on, each applying the add-on's
// objects with server-side apply so that a second run changes nothing.
//
// Reads Data.Cluster and the API client (Data.Client).
func AddonPhase() Phase {
	p := Phase{Name: "addon", Short: "Install the cluster add-ons"}
	for _, a := range addons.All() {
		p.Phases = append(p.Phases, Phase{
			Name:  a.Name,
			Short: "Install the " + a.Title + " add-on",
			Skip:  func(d *Data) (string, bool) { return a.Disabled(d.Cluster) },
			Run: func(ctx context.Context, d *Data) error {
				return applyAddon(ctx, d, a)
			},
		})
	}
	return p
}

func applyAddon(ctx context.Context, d *Data, a addons.Addon) error {
	objs, err := a.Objects(d.Cluster)
	if err != nil {
		return err
	}
	cs, err := clusterClient(ctx, d)
	if err != nil {
		return err
	}
	changes, err := apiclient.ApplyObjects(ctx, cs, objs, false)
	if err != nil {
		return err
	}
	for _, c := range changes {
		d.Log.Debug("applied object", "addon", a.Name, "object", c.Object, "result", c.Outcome.String())
	}
	d.Out.Say("%s", apiclient.ApplySummary(a.Title, changes))
	return nil
}
