package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kforge/kforge/kubeconfig"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/tokens"
)

// validUsages are the usages --usages accepts, in the order messages list them.
var validUsages = []string{tokens.UsageAuthentication, tokens.UsageSigning}

// tokenOptions are the flags the token commands share.
type tokenOptions struct {
	root       *rootOptions
	kubeconfig string
}

// store returns the token store of the cluster the kubeconfig reaches.
func (o *tokenOptions) store() (*tokens.Store, error) {
	cs, err := o.root.apiClient(o.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("building the API client from %s: %w", o.kubeconfig, err)
	}
	return tokens.NewStore(cs, o.root.logger()), nil
}

func newTokenCommand(root *rootOptions) *cobra.Command {
	o := &tokenOptions{root: root}
	c := &cobra.Command{
		Use:   "token",
		Short: "Manage bootstrap tokens, the tokens nodes join with",
		Long: `Manage bootstrap tokens, the tokens nodes join with.

A bootstrap token is "abcdef.0123456789abcdef": a public ID and a secret. It lives in
the Secret kube-system/bootstrap-token-<id>, exactly as kubeadm keeps it, so kubeadm's
and kforge's tokens are interchangeable. The cluster deletes a token when it expires.`,
		Args: cobra.NoArgs,
	}
	c.PersistentFlags().StringVar(&o.kubeconfig, "kubeconfig", filepath.Join(phases.DefaultKubeconfigDir, "admin.conf"),
		"kubeconfig to reach the cluster with")
	c.AddCommand(
		newTokenCreateCommand(o),
		newTokenListCommand(o),
		newTokenDeleteCommand(o),
		newTokenGenerateCommand(root),
	)
	return c
}

// tokenCreateOptions are the flags of `kforge token create`.
type tokenCreateOptions struct {
	*tokenOptions
	ttl              time.Duration
	usages           []string
	groups           []string
	description      string
	printJoinCommand bool
}

func newTokenCreateCommand(to *tokenOptions) *cobra.Command {
	o := &tokenCreateOptions{tokenOptions: to}
	c := &cobra.Command{
		Use:   "create [TOKEN]",
		Short: "Create a bootstrap token in the cluster and print it",
		Long: `Create a bootstrap token in the cluster and print it.

Without TOKEN, a new random one is created. Creating a token that exists with the same
secret updates its TTL, usages, groups and description; a token whose ID exists with a
different secret is an error.`,
		Example: `  # a join token for a worker, printed as a ready join command
  kforge token create --print-join-command

  # a specific token that lives two hours
  kforge token create abcdef.0123456789abcdef --ttl 2h`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args)
		},
	}
	f := c.Flags()
	f.DurationVar(&o.ttl, "ttl", tokens.DefaultTTL, "lifetime of the token, e.g. 2h or 30m; 0 means it never expires")
	f.StringSliceVar(&o.usages, "usages", []string{tokens.UsageSigning, tokens.UsageAuthentication},
		"what the token may be used for: "+strings.Join(validUsages, ", "))
	f.StringSliceVar(&o.groups, "groups", []string{tokens.DefaultNodeGroup},
		"extra groups the token authenticates as; each must start with \"system:bootstrappers:\"")
	f.StringVar(&o.description, "description", "", "what the token is for, shown by \"kforge token list\"")
	f.BoolVar(&o.printJoinCommand, "print-join-command", false, "print the whole join command instead of the token alone")
	return c
}

// tokenSpec validates the flags of token create and returns the token's Spec.
func tokenSpec(ttl time.Duration, usages, groups []string, description string, now time.Time) (tokens.Spec, error) {
	var errs []error
	s := tokens.Spec{Description: description}
	switch {
	case ttl < 0:
		errs = append(errs, fmt.Errorf("--ttl %s is negative: use a positive duration such as 24h or 30m, or 0 for a token that never expires", ttl))
	case ttl > 0:
		s.Expires = now.Add(ttl).Truncate(time.Second)
	}
	for _, u := range usages {
		u = strings.TrimSpace(u)
		switch {
		case !slices.Contains(validUsages, u):
			errs = append(errs, fmt.Errorf("unknown usage %q in --usages: valid usages are %s", u, strings.Join(validUsages, ", ")))
		case !slices.Contains(s.Usages, u):
			s.Usages = append(s.Usages, u)
		}
	}
	for _, g := range groups {
		g = strings.TrimSpace(g)
		switch {
		case !bootstraputil.BootstrapGroupRegexp.MatchString(g):
			errs = append(errs, fmt.Errorf("group %q in --groups is not valid: a group must start with \"system:bootstrappers:\" followed by lowercase letters, digits, \":\" or \"-\" (pattern %s)",
				g, bootstrapapi.BootstrapGroupPattern))
		case !slices.Contains(s.Groups, g):
			s.Groups = append(s.Groups, g)
		}
	}
	if len(s.Groups) > 0 && !s.Has(tokens.UsageAuthentication) {
		errs = append(errs, fmt.Errorf("--groups needs the %q usage: a token that cannot authenticate has no use for groups", tokens.UsageAuthentication))
	}
	return s, errors.Join(errs...)
}

func (o *tokenCreateOptions) run(ctx context.Context, args []string) error {
	log := o.root.logger()
	spec, err := tokenSpec(o.ttl, o.usages, o.groups, o.description, o.root.now())
	if err != nil {
		return err
	}
	var tok tokens.Token
	if len(args) == 1 {
		if tok, err = tokens.Parse(args[0]); err != nil {
			return err
		}
	} else if tok, err = tokens.Generate(); err != nil {
		return err
	}
	// Read the kubeconfig's cluster before creating anything: a token the user never sees
	// the join command of is useless.
	var endpoint, pin string
	if o.printJoinCommand {
		if endpoint, pin, err = joinTarget(o.kubeconfig); err != nil {
			return err
		}
	}
	store, err := o.store()
	if err != nil {
		return err
	}
	out, err := store.Create(ctx, tok, spec)
	if errors.Is(err, tokens.ErrIDTaken) {
		return fmt.Errorf("creating token %s: %w; delete it first with \"kforge token delete %s\", or pick another ID", tok.Redacted(), err, tok.ID)
	}
	if err != nil {
		return err
	}
	log.Info("bootstrap token "+out.String(), "token", tok, "expires", spec.Expires, "usages", spec.Usages, "groups", spec.Groups)
	if o.printJoinCommand {
		fmt.Fprintf(o.root.streams.Out, "kforge join %s --token %s --discovery-token-ca-cert-hash %s\n", endpoint, tok.Reveal(), pin)
		return nil
	}
	fmt.Fprintln(o.root.streams.Out, tok.Reveal())
	return nil
}

// joinTarget reads the endpoint (host:port) and the CA pin of the current cluster of the
// kubeconfig at path.
func joinTarget(path string) (endpoint, pin string, err error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return "", "", fmt.Errorf("reading kubeconfig %s: %w", path, err)
	}
	endpoint, pin, err = kubeconfig.JoinTarget(cfg, os.ReadFile)
	if err != nil {
		return "", "", fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return endpoint, pin, nil
}

// tokenInfo is one token as `token list` reports it.
type tokenInfo struct {
	// Token is "id.secret", set only with --show-secrets.
	Token       string     `json:"token,omitempty"`
	ID          string     `json:"id"`
	Expires     *time.Time `json:"expires,omitempty"`
	Expired     bool       `json:"expired"`
	Usages      []string   `json:"usages"`
	Groups      []string   `json:"groups"`
	Description string     `json:"description,omitempty"`

	tok tokens.Token
}

// tokenInfos returns what token list reports of entries.
func tokenInfos(entries []tokens.Entry, now time.Time, showSecrets bool) []tokenInfo {
	infos := []tokenInfo{}
	for _, e := range entries {
		info := tokenInfo{
			ID:          e.Token.ID,
			Expired:     e.Spec.Expired(now),
			Usages:      append([]string{}, e.Spec.Usages...),
			Groups:      append([]string{}, e.Spec.Groups...),
			Description: e.Spec.Description,
			tok:         e.Token,
		}
		if showSecrets {
			info.Token = e.Token.Reveal()
		}
		if !e.Spec.Expires.IsZero() {
			exp := e.Spec.Expires.UTC()
			info.Expires = &exp
		}
		infos = append(infos, info)
	}
	return infos
}

func newTokenListCommand(to *tokenOptions) *cobra.Command {
	var output string
	var showSecrets bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the bootstrap tokens of the cluster",
		Long: `List the bootstrap tokens of the cluster.

Secrets are shown as "<redacted>" unless --show-secrets is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q is not supported; use text or json", output)
			}
			store, err := to.store()
			if err != nil {
				return err
			}
			entries, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			now := to.root.now()
			infos := tokenInfos(entries, now, showSecrets)
			w := to.root.streams.Out
			if output == "json" {
				return writeJSON(w, infos)
			}
			return printTokenTable(w, infos, now, showSecrets)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	c.Flags().BoolVar(&showSecrets, "show-secrets", false, "show whole tokens, secrets included")
	return c
}

func printTokenTable(w io.Writer, infos []tokenInfo, now time.Time, showSecrets bool) error {
	tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION\tEXTRA GROUPS")
	orNone := func(s string) string {
		if s == "" {
			return "<none>"
		}
		return s
	}
	for _, in := range infos {
		token := in.tok.Redacted()
		if showSecrets {
			token = in.tok.Reveal()
		}
		ttl, expires := "<forever>", "<never>"
		if in.Expires != nil {
			expires = in.Expires.Format(time.RFC3339)
			ttl = "expired"
			if !in.Expired {
				ttl = duration.ShortHumanDuration(in.Expires.Sub(now))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", token, ttl, expires,
			orNone(strings.Join(in.Usages, ",")), orNone(in.Description), orNone(strings.Join(in.Groups, ",")))
	}
	return tw.Flush()
}

func newTokenDeleteCommand(to *tokenOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete TOKEN_ID|TOKEN...",
		Short: "Delete bootstrap tokens from the cluster",
		Long: `Delete bootstrap tokens from the cluster, by ID ("abcdef") or whole token
("abcdef.0123456789abcdef"). Every argument is tried; the errors are reported together.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := tokenIDs(args)
			if err != nil {
				return err
			}
			store, err := to.store()
			if err != nil {
				return err
			}
			var errs []error
			for _, id := range ids {
				if err := store.Delete(cmd.Context(), id); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(to.root.streams.Out, "bootstrap token %q deleted\n", id)
			}
			return errors.Join(errs...)
		},
	}
}

// tokenIDs reads the arguments of token delete: IDs or whole tokens. Errors never repeat
// an argument, which may hold a secret.
func tokenIDs(args []string) ([]string, error) {
	var ids []string
	var errs []error
	for i, a := range args {
		if strings.Contains(a, ".") {
			t, err := tokens.Parse(a)
			if err != nil {
				errs = append(errs, fmt.Errorf("argument %d: %w", i+1, err))
				continue
			}
			ids = append(ids, t.ID)
			continue
		}
		if !bootstraputil.IsValidBootstrapTokenID(a) {
			errs = append(errs, fmt.Errorf("argument %d is neither a token ID ([a-z0-9]{6}, e.g. \"abcdef\") nor a token (\"abcdef.0123456789abcdef\")", i+1))
			continue
		}
		ids = append(ids, a)
	}
	return ids, errors.Join(errs...)
}

func newTokenGenerateCommand(root *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "generate",
		Short: "Print a new random bootstrap token without creating it",
		Long: `Print a new random bootstrap token without creating it in the cluster. Pass it to
"kforge init --token" or "kforge token create".`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			t, err := tokens.Generate()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(root.streams.Out, t.Reveal())
			return err
		},
	}
}
