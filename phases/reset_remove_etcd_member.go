package phases

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kforge/kforge/etcd"
	"github.com/kforge/kforge/manifests"
)

// readLocalEtcdMember reads this host's member from the etcd static pod manifest; nil
// when there is none.
func readLocalEtcdMember(d *Data) (*manifests.EtcdMember, error) {
	shown := filepath.Join(d.ManifestsDir, manifests.FileName(manifests.NameEtcd))
	b, err := readFileIfExists(d.Path(shown))
	if err != nil || b == nil {
		return nil, err
	}
	m, err := manifests.ParseEtcdMember(b)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", shown, err)
	}
	return &m, nil
}

// removeEtcdMemberPhase takes this host's member out of the etcd cluster before reset
// deletes its data, so that the remaining members keep their quorum. It refuses when the
// remaining healthy members would be too few for quorum, unless --force.
//
// Reads the etcd manifest under Data.ManifestsDir, Data.Etcd and Data.Force.
func removeEtcdMemberPhase() Phase {
	return Phase{
		Name:  "remove-etcd-member",
		Short: "Remove this host's etcd member from the cluster, refusing if the rest would lose quorum",
		Run:   runRemoveEtcdMember,
	}
}

func runRemoveEtcdMember(ctx context.Context, d *Data) error {
	local, err := readLocalEtcdMember(d)
	if err != nil {
		return err
	}
	if local == nil {
		d.Out.Say("this host runs no etcd member")
		return nil
	}
	cli, err := d.Etcd(d, local.Endpoints())
	if err != nil {
		return d.forceOr(fmt.Errorf("connecting to etcd to remove this host's member: %w", err))
	}
	defer cli.Close()
	members, err := listEtcdMembers(ctx, cli)
	if err != nil {
		return d.forceOr(err)
	}
	r, err := etcd.Leave(ctx, cli, members, local.PeerURL)
	if err != nil {
		return d.forceOr(err)
	}
	switch r.Outcome {
	case etcd.NotAMember:
		d.Out.Say("etcd has no member with peer URL %s (already removed)", local.PeerURL)
	case etcd.OnlyMember:
		d.Out.Say("%s is the only etcd member: there is no cluster left to remove it from", r.Member.Name)
	case etcd.Removed:
		d.Out.Say("removed etcd member %s (%x); %d members remain", r.Member.Name, r.Member.ID, r.Remaining)
	}
	return nil
}

// forceOr returns err, or with Force prints it as a warning and returns nil.
func (d *Data) forceOr(err error) error {
	if !d.Force {
		return err
	}
	d.Out.Say("WARNING (--force): %v", err)
	return nil
}
