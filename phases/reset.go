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
// out is the running phase's printer.
type Act func(out *Printer, desc string, do func() error) error

// RealAct does the step and reports it.
func RealAct(out *Printer, desc string, do func() error) error {
	out.Say("%s", desc)
	return do()
}

// DryRunAct reports the step as a plan and does nothing.
func DryRunAct(out *Printer, desc string, _ func() error) error {
	out.Say("would %s", desc)
	return nil
}
