package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kforge/kforge/certs"
	"github.com/kforge/kforge/internal/apiclient"
	"github.com/kforge/kforge/phases"
	"github.com/kforge/kforge/tokens"
)

// tokenClient builds the API client of the token commands; tests swap in a fake clientset.
var tokenClient = func(path string) (kubernetes.Interface, error) {
	return phases.ClientFromKubeconfig(path)
}

// tokenNow is the clock of the token commands; tests pin it.
var tokenNow = time.Now

// validUsages are the usages --usages accepts, in the order messages list them.
var validUsages = []string{tokens.UsageAuthentication, tokens.UsageSigning}

// tokenOptions are the flags the token commands share.
type tokenOptions struct {
	root       *rootOptions
	kubeconfig string
}

func (o *tokenOptions) client() (kubernetes.Interface, error) {
	cs, err := tokenClient(o.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("building the API client from %s: %w", o.kubeconfig, err)
	}
	return cs, nil
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
	spec, err := tokenSpec(o.ttl, o.usages, o.groups, o.description, tokenNow())
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
	cs, err := o.client()
	if err != nil {
		return err
	}
	out, err := createToken(ctx, cs, tok, spec)
	if err != nil {
		return err
	}
	log.Info("bootstrap token "+out.String(), "token", tok, "expires", spec.Expires, "usages", spec.Usages, "groups", spec.Groups)
	if o.printJoinCommand {
		fmt.Fprintf(o.root.streams.Out, "kforge join %s --token %s --discovery-token-ca-cert-hash %s\n", endpoint, tok, pin)
		return nil
	}
	fmt.Fprintln(o.root.streams.Out, tok)
	return nil
}

// ErrTokenIDTaken is returned when creating a token whose ID exists with another secret.
var ErrTokenIDTaken = errors.New("a bootstrap token with this ID exists with a different secret")

// createToken writes tok's Secret with spec. A Secret of the same token is updated; one of
// another token with the same ID is an error that names only the ID.
func createToken(ctx context.Context, cs kubernetes.Interface, tok tokens.Token, spec tokens.Spec) (apiclient.Outcome, error) {
	name := tokens.SecretName(tok.ID)
	var existing *corev1.Secret
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		s, err := cs.CoreV1().Secrets(tokens.SecretNamespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		}
		existing = s
		return nil
	})
	if err != nil {
		return apiclient.Unchanged, fmt.Errorf("reading Secret %s/%s: %w", tokens.SecretNamespace, name, err)
	}
	if existing != nil {
		old, _, err := tokens.FromSecret(existing)
		if err != nil && !errors.Is(err, tokens.ErrNotToken) {
			return apiclient.Unchanged, err
		}
		if err != nil || !old.Equal(tok) {
			return apiclient.Unchanged, fmt.Errorf("creating token %s: %w; delete it first with \"kforge token delete %s\", or pick another ID",
				tok.Redacted(), ErrTokenIDTaken, tok.ID)
		}
	}
	_, outcome, err := apiclient.Ensure(ctx, cs, tokens.Secret(tok, spec))
	if err != nil {
		return outcome, fmt.Errorf("writing bootstrap token %s: %w", tok.Redacted(), err)
	}
	return outcome, nil
}

// joinTarget reads the endpoint (host:port) and the CA pin of the current cluster of the
// kubeconfig at path.
func joinTarget(path string) (endpoint, pin string, err error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return "", "", fmt.Errorf("reading kubeconfig %s: %w", path, err)
	}
	ctxName := cfg.CurrentContext
	kctx, ok := cfg.Contexts[ctxName]
	if !ok {
		return "", "", fmt.Errorf("kubeconfig %s: current context %q does not exist", path, ctxName)
	}
	cluster, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		return "", "", fmt.Errorf("kubeconfig %s: cluster %q of context %q does not exist", path, kctx.Cluster, ctxName)
	}
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("kubeconfig %s: cluster %q has server %q, want a URL such as https://10.0.0.1:6443", path, kctx.Cluster, cluster.Server)
	}
	endpoint = u.Host
	if u.Port() == "" {
		endpoint = net.JoinHostPort(u.Hostname(), "443")
	}
	caPEM := cluster.CertificateAuthorityData
	if len(caPEM) == 0 && cluster.CertificateAuthority != "" {
		if caPEM, err = os.ReadFile(cluster.CertificateAuthority); err != nil {
			return "", "", fmt.Errorf("reading the CA of cluster %q in kubeconfig %s: %w", kctx.Cluster, path, err)
		}
	}
	if len(caPEM) == 0 {
		return "", "", fmt.Errorf("kubeconfig %s: cluster %q has no certificate-authority-data, so there is no CA to pin", path, kctx.Cluster)
	}
	ca, err := certs.ParseCertPEM(caPEM)
	if err != nil {
		return "", "", fmt.Errorf("reading the CA of cluster %q in kubeconfig %s: %w", kctx.Cluster, path, err)
	}
	return endpoint, certs.PinHash(ca), nil
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

// listTokens returns the well-formed bootstrap tokens of the cluster, sorted by ID.
// Malformed token Secrets are logged by name and skipped.
func listTokens(ctx context.Context, cs kubernetes.Interface, now time.Time, showSecrets bool, log *slog.Logger) ([]tokenInfo, error) {
	var list *corev1.SecretList
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		var err error
		list, err = cs.CoreV1().Secrets(tokens.SecretNamespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String(),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing bootstrap token Secrets in %s: %w", tokens.SecretNamespace, err)
	}
	infos := []tokenInfo{}
	for i := range list.Items {
		sec := &list.Items[i]
		if sec.Type != bootstrapapi.SecretTypeBootstrapToken {
			continue
		}
		tok, spec, err := tokens.FromSecret(sec)
		if err != nil {
			log.Warn("skipping a malformed bootstrap token Secret", "err", err)
			continue
		}
		info := tokenInfo{
			ID:          tok.ID,
			Expired:     spec.Expired(now),
			Usages:      append([]string{}, spec.Usages...),
			Groups:      append([]string{}, spec.Groups...),
			Description: spec.Description,
			tok:         tok,
		}
		if showSecrets {
			info.Token = tok.String()
		}
		if !spec.Expires.IsZero() {
			e := spec.Expires.UTC()
			info.Expires = &e
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b tokenInfo) int { return strings.Compare(a.ID, b.ID) })
	return infos, nil
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
			cs, err := to.client()
			if err != nil {
				return err
			}
			now := tokenNow()
			infos, err := listTokens(cmd.Context(), cs, now, showSecrets, to.root.logger())
			if err != nil {
				return err
			}
			w := to.root.streams.Out
			if output == "json" {
				b, err := json.MarshalIndent(infos, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(w, string(b))
				return err
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
			token = in.tok.String()
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
			cs, err := to.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, id := range ids {
				if err := deleteToken(cmd.Context(), cs, id); err != nil {
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

// ErrTokenNotFound is returned when deleting a token that does not exist.
var ErrTokenNotFound = errors.New("bootstrap token not found")

// deleteToken deletes the Secret of token id.
func deleteToken(ctx context.Context, cs kubernetes.Interface, id string) error {
	name := tokens.SecretName(id)
	err := apiclient.Retry(ctx, func(ctx context.Context) error {
		return cs.CoreV1().Secrets(tokens.SecretNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("deleting token %q: %w (no Secret %s/%s)", id, ErrTokenNotFound, tokens.SecretNamespace, name)
	case err != nil:
		return fmt.Errorf("deleting Secret %s/%s: %w", tokens.SecretNamespace, name, err)
	}
	return nil
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
			_, err = fmt.Fprintln(root.streams.Out, t)
			return err
		},
	}
}
