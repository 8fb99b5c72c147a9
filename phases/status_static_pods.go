package phases

import "context"

// statusStaticPodsPhase reads the control-plane static pods' health from their mirror
// pods, through the admin client detect found (fleet.StaticPods). An API error is
// reported in the summary, not as a failure of the run.
//
// Reads the fleet; sets Data.Status's pods.
func statusStaticPodsPhase() Phase {
	return Phase{
		Name:  "static-pods",
		Short: "Read the health of the control-plane static pods from their mirror pods",
		Run: func(ctx context.Context, d *Data) error {
			f, err := d.Fleet(ctx)
			if err != nil {
				return err
			}
			d.Status.pods, d.Status.podsErr = f.StaticPods(ctx)
			if d.Status.podsErr != nil {
				d.Out.Say("WARNING: %v", d.Status.podsErr)
			}
			ready, all := 0, 0
			for _, pods := range d.Status.pods {
				for _, ok := range pods {
					all++
					if ok {
						ready++
					}
				}
			}
			if d.Status.pods != nil {
				d.Out.Say("%d of %d static pods Ready on %d nodes", ready, all, len(d.Status.pods))
			}
			return ctx.Err()
		},
	}
}
