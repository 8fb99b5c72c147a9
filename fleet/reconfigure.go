package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/kforge/kforge/config"
	"github.com/kforge/kforge/host"
	"github.com/kforge/kforge/internal/overlay"
)

// ActionReconfigure is the action of a host already in the cluster whose files differ
// from what the file asks for.
const ActionReconfigure = "reconfigure"

// planDir is where a dry run puts the copy of cluster.toml (and, if the host's kforge is
// another build, the kforge binary) it plans with, and removes them after: a dry run
// leaves the host's own files alone.
const planDir = "/tmp"

// Reconfigure makes the hosts already in the cluster match the file. It asks every such
// host for its plan at once (`kforge reconfigure --dry-run -o json`: one command per host,
// which compares on the host and sends back only what differs), prints it, and, unless
// the run is a dry run, applies it one host at a time: the control-plane hosts first,
// then the workers in batches of MaxUnavailable. Each host's reconfigure waits for what
// it restarted to be healthy before it returns. A host that fails stops the rollout: the
// hosts after it are skipped, and running up again continues from there.
func (f *Fleet) Reconfigure(ctx context.Context) {
	if !f.HasCluster() {
		return
	}
	var names []string
	f.mu.Lock()
	for _, h := range f.c.Hosts {
		if r := f.reports[h.Name]; r != nil && r.Action == ActionUnchanged && r.Result == ResultOK && f.conns[h.Name] != nil {
			r.Action, r.Result = ActionReconfigure, ResultPlanned
			names = append(names, h.Name)
		}
	}
	f.mu.Unlock()
	var mu sync.Mutex
	plans := map[string]HostPlan{}
	f.ForEach(ctx, names, func(ctx context.Context, h *config.Host) error {
		return f.timed(h.Name, func() error {
			p, err := f.hostPlan(ctx, h.Name)
			if err != nil {
				return fmt.Errorf("asking for the host's plan: %w", err)
			}
			mu.Lock()
			plans[h.Name] = p
			mu.Unlock()
			return nil
		})
	})
	var cps, workers []string
	for _, n := range names {
		p, ok := plans[n]
		if !ok {
			continue // failed
		}
		f.mu.Lock()
		r := f.reports[n]
		r.Plan = &p
		if p.Empty() {
			r.Action, r.Result = ActionUnchanged, ResultOK
		}
		f.mu.Unlock()
		if p.Empty() {
			f.out().Phase(n, "matches the file")
			continue
		}
		f.printPlan(n, p)
		if h, _ := f.c.HostByName(n); h.IsControlPlane() {
			cps = append(cps, n)
		} else {
			workers = append(workers, n)
		}
	}
	if f.o.DryRun || len(cps)+len(workers) == 0 {
		return
	}
	batches := make([][]string, 0, len(cps)+len(workers))
	for _, n := range cps {
		batches = append(batches, []string{n})
	}
	size := max(f.o.MaxUnavailable, 1)
	for i := 0; i < len(workers); i += size {
		batches = append(batches, workers[i:min(i+size, len(workers))])
	}
	for i, batch := range batches {
		f.ForEach(ctx, batch, f.reconfigureHost)
		failed := ""
		f.mu.Lock()
		for _, n := range batch {
			if f.reports[n].Result == ResultFailed {
				failed = n
				break
			}
		}
		f.mu.Unlock()
		if failed != "" {
			for _, rest := range batches[i+1:] {
				for _, n := range rest {
					f.Skip(n, "the rollout stopped at "+failed+", which failed; fix it and run up again to go on")
				}
			}
			return
		}
	}
}

// printPlan prints what reconfigure would change on a host: each file, what it
// restarts, and the diff of each changed text file.
func (f *Fleet) printPlan(name string, p HostPlan) {
	restarts := "restarts nothing"
	if len(p.Restarts) > 0 {
		restarts = "restarts " + strings.Join(p.Restarts, ", ")
	}
	f.out().Phase(name, "will reconfigure: %d files differ from the file; %s", len(p.Changes), restarts)
	for _, c := range p.Changes {
		note := ""
		if c.Secret {
			note = " (holds a key or credential: content not shown)"
		}
		if c.Action == overlay.Mode {
			note = " (" + c.OldMode + " -> " + c.NewMode + ")"
		}
		f.out().Phase(name, "  %s %s%s", c.Action, c.Path, note)
		for _, line := range c.DiffLines() {
			f.out().Phase(name, "      %s", line)
		}
	}
}

// hostPlan runs `kforge reconfigure --dry-run -o json` on a host. It first asks the
// installed kforge, which checks that it is this run's build (--expect-sha256: it hashes
// itself, quicker than sha256sum, and it saves a round trip). If that fails, for whatever
// reason, it plans with this run's build: a real run installs it, with cluster.toml, as
// for any host it works on; a dry run uploads it under planDir and removes it after.
func (f *Fleet) hostPlan(ctx context.Context, name string) (HostPlan, error) {
	if err := f.hashKforge(); err != nil {
		return HostPlan{}, err
	}
	cfg := RemoteConfig
	var s *scratch
	if f.o.DryRun {
		s = f.scratch(name)
		defer s.remove(ctx)
		var err error
		if cfg, err = f.planConfig(ctx, s); err != nil {
			return HostPlan{}, err
		}
	} else if _, err := f.conn(name).Upload(ctx, host.BytesFile(RemoteConfig, f.remote, 0o600)); err != nil {
		return HostPlan{}, err
	}
	if p, err := f.planWith(ctx, name, RemoteKforge, cfg, "--expect-sha256", f.kforgeSum); err == nil {
		return p, nil
	}
	bin := RemoteKforge
	if f.o.DryRun {
		bin = path.Join(planDir, "kforge-plan-"+f.kforgeSum[:12])
		if err := s.upload(ctx, host.File{LocalPath: f.o.Kforge, Dst: bin, Mode: 0o755, SHA256: f.kforgeSum}); err != nil {
			return HostPlan{}, err
		}
	} else if _, err := f.ensureKforge(ctx, name); err != nil {
		return HostPlan{}, err
	}
	return f.planWith(ctx, name, bin, cfg)
}

// planWith runs `kforge reconfigure --dry-run -o json` on a host with the kforge binary
// bin and the cluster.toml cfg there, and reads the plan it prints.
func (f *Fleet) planWith(ctx context.Context, name, bin, cfg string, extra ...string) (HostPlan, error) {
	var out bytes.Buffer
	args := append(append([]string{"reconfigure", "-f", cfg, "--node", name, "--dry-run", "-o", "json"}, f.hostFlags()...), extra...)
	if err := f.kforgeAt(ctx, name, bin, args, nil, &out); err != nil {
		return HostPlan{}, err
	}
	var p HostPlan
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		return HostPlan{}, fmt.Errorf("reading the plan kforge reconfigure printed: %w", err)
	}
	return p, nil
}

// scratch is what a run that must leave a host's files alone (a dry run, status) puts on
// the host under planDir; remove deletes it.
type scratch struct {
	name  string
	conn  host.Host
	paths []string
}

func (f *Fleet) scratch(name string) *scratch { return &scratch{name: name, conn: f.conn(name)} }

// upload puts a file on the host and records it for remove, even when the upload fails
// part way.
func (s *scratch) upload(ctx context.Context, file host.File) error {
	s.paths = append(s.paths, file.Dst)
	_, err := s.conn.Upload(ctx, file)
	return err
}

// remove deletes what was uploaded, even after the run's context ended.
func (s *scratch) remove(ctx context.Context) {
	if len(s.paths) > 0 {
		_, _ = s.conn.Run(context.WithoutCancel(ctx), host.Cmd{Args: append([]string{"rm", "-f", "--"}, s.paths...)})
	}
}

// planConfig puts the cluster.toml the hosts read under planDir on s's host and returns
// its path there.
func (f *Fleet) planConfig(ctx context.Context, s *scratch) (string, error) {
	if err := f.hashKforge(); err != nil {
		return "", err
	}
	cfg := path.Join(planDir, "kforge-plan-"+f.kforgeSum[:12]+"-"+s.name+".toml")
	return cfg, s.upload(ctx, host.BytesFile(cfg, f.remote, 0o600))
}

// runsThisBuild reports whether the kforge installed on a host is the binary this run
// installs (by its sha256); a host where it is missing, or cannot be hashed, does not.
func (f *Fleet) runsThisBuild(ctx context.Context, name string) (bool, error) {
	if err := f.hashKforge(); err != nil {
		return false, err
	}
	res, err := f.conn(name).Run(ctx, host.Cmd{Args: []string{"sha256sum", RemoteKforge}})
	return err == nil && strings.HasPrefix(string(res.Stdout), f.kforgeSum), nil
}

// reconfigureHost applies the file on a host already in the cluster.
func (f *Fleet) reconfigureHost(ctx context.Context, h *config.Host) error {
	err := f.timed(h.Name, func() error {
		args := append([]string{"reconfigure", "-f", RemoteConfig, "--node", h.Name}, f.hostFlags()...)
		return f.kforge(ctx, h.Name, args, nil)
	})
	if err != nil {
		return err
	}
	f.mu.Lock()
	restarts := f.reports[h.Name].Plan.Restarts
	f.mu.Unlock()
	what := "reconfigured"
	if len(restarts) > 0 {
		what += ": restarted " + strings.Join(restarts, ", ") + ", healthy again"
	}
	f.done(h.Name, what)
	return nil
}
