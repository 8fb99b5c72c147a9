package phases

import "context"

// upAddonsPhase applies the add-ons' objects through the admin client when a cluster
// exists (fleet.ApplyAddons), so that an add-on setting edited in the file reaches a
// running cluster; on a dry run it plans them, field by field, and writes nothing.
//
// Reads Data.Up's plan.
func upAddonsPhase() Phase {
	return Phase{
		Name:  "addons",
		Short: "Apply the add-ons' objects from the file (server-side apply); on --dry-run, show what would change",
		Run: func(ctx context.Context, d *Data) error {
			if _, err := d.upPlan(ctx); err != nil {
				return err
			}
			return d.Up.fleet.ApplyAddons(ctx)
		},
	}
}
