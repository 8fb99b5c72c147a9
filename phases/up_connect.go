package phases

import "context"

// upConnectPhase connects to the hosts over SSH. A host that cannot be reached is marked
// failed with why; the others go on.
//
// Reads Data.Up.Options; sets Data.Up's fleet.
func upConnectPhase() Phase {
	return Phase{
		Name:  "connect",
		Short: "Connect to every host of the file over SSH, checking host keys",
		Run: func(ctx context.Context, d *Data) error {
			_, err := d.Fleet(ctx)
			return err
		},
	}
}
