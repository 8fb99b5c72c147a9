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
	changed := 0
	for _, o := range objs {
		out, err := apiclient.Apply(ctx, cs, o)
		if err != nil {
			return err
		}
		d.Log.Debug("applied object", "addon", a.Name, "object", addons.Describe(o), "result", out.String())
		if out != apiclient.Unchanged {
			changed++
		}
	}
	if changed == 0 {
		d.Out.Say("using existing %s (%d objects unchanged)", a.Title, len(objs))
	} else {
		d.Out.Say("applied %s (%d objects)", a.Title, len(objs))
	}
	return nil
}
