package phases

// ResetWorkflow is `kforge reset`: it undoes init and join on this host, so that the host
// is ready for another init or join.
func ResetWorkflow() *Workflow {
	return &Workflow{
		Name: "reset",
		Phases: []Phase{
			resetPreflightPhase(),
			removeEtcdMemberPhase(),
			removeNodePhase(),
			cleanupNodePhase(),
		},
	}
}

// Act carries out one step of a destructive workflow: a real run does it, a dry run
// prints it.
type Act func(desc string, do func() error) error

// RealAct does the step and reports it.
func RealAct(p *Printer, phase string) Act {
	return func(desc string, do func() error) error {
		p.Phase(phase, "%s", desc)
		return do()
	}
}

// DryRunAct reports the step as a plan and does nothing.
func DryRunAct(p *Printer, phase string) Act {
	return func(desc string, _ func() error) error {
		p.Phase(phase, "would %s", desc)
		return nil
	}
}
