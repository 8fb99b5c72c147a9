package phases

import "context"

// upInitPhase runs kforge init on the first control-plane host when there is no cluster
// yet, sharing the certificates when control-plane joins follow.
//
// Reads Data.Up's plan.
func upInitPhase(notDry func(*Data) (string, bool)) Phase {
	return Phase{
		Name:  "init",
		Short: "Run kforge init on the first control-plane host, when there is no cluster yet",
		Skip:  notDry,
		Run: func(ctx context.Context, d *Data) error {
			p, err := d.upPlan(ctx)
			if err != nil {
				return err
			}
			if p.Init == "" {
				d.Out.Say("the cluster exists; nothing to init")
				return nil
			}
			return d.Up.fleet.Init(ctx, p.Init, p.ControlPlaneJoins())
		},
	}
}
