package tokens

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kforge/kforge/internal/apiclient"
)

var storeNow = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

var (
	tokA     = Token{ID: "abcdef", Secret: "0123456789abcdef"}
	tokOther = Token{ID: "abcdef", Secret: "ffffffffffffffff"}
)

// secrets are every token secret the tests use: none may reach a log or an error.
var secrets = []string{tokA.Secret, tokOther.Secret, "bbbbbbbbbbbbbbbb", "cccccccccccccccc", "zzzzzzzzzzzzzzzz"}

func joinSpec(expires time.Time) Spec {
	return Spec{Expires: expires, Usages: []string{UsageAuthentication, UsageSigning}, Groups: []string{DefaultNodeGroup}}
}

// malformed is the Secret of tokA with a broken secret.
func malformed() *corev1.Secret {
	sec := Secret(tokA, Spec{Description: "broken"})
	sec.Data["token-secret"] = []byte("short")
	return sec
}

// newTestStore returns a Store over a fake clientset holding objs, and its log.
func newTestStore(t *testing.T, objs ...runtime.Object) (*Store, *fake.Clientset, *bytes.Buffer) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	var log bytes.Buffer
	return NewStore(cs, slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))), cs, &log
}

// checkNoSecret fails when a token secret is in err or the log.
func checkNoSecret(t *testing.T, err error, log *bytes.Buffer) {
	t.Helper()
	for _, s := range secrets {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error holds a token secret: %v", err)
		}
		if strings.Contains(log.String(), s) {
			t.Errorf("log holds a token secret:\n%s", log.String())
		}
	}
}

// stored reads token id back from cs; ok is false when it has no Secret.
func stored(t *testing.T, cs *fake.Clientset, id string) (Token, Spec, bool) {
	t.Helper()
	sec, err := cs.CoreV1().Secrets(SecretNamespace).Get(context.Background(), SecretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Token{}, Spec{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	tok, spec, err := FromSecret(sec)
	if err != nil {
		t.Fatalf("stored Secret: %v", err)
	}
	return tok, spec, true
}

// failOnce makes the first verb on secrets fail with err.
func failOnce(cs *fake.Clientset, verb string, err error) {
	failed := false
	cs.PrependReactor(verb, "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failed {
			return false, nil, nil
		}
		failed = true
		return true, nil, err
	})
}

var secretsResource = corev1.Resource("secrets")

func TestStoreCreate(t *testing.T) {
	spec := joinSpec(storeNow.Add(time.Hour))
	tests := []struct {
		name     string
		existing []runtime.Object
		react    func(*fake.Clientset)
		want     apiclient.Outcome
		wantErr  error // errors.Is; nil: no error
		wantTok  Token // what is stored afterwards
		wantSpec Spec
	}{
		{name: "new", want: apiclient.Created, wantTok: tokA, wantSpec: spec},
		{name: "same token is updated in place", existing: []runtime.Object{Secret(tokA, Spec{Description: "old"})},
			want: apiclient.Updated, wantTok: tokA, wantSpec: spec},
		{name: "same token and spec is unchanged", existing: []runtime.Object{Secret(tokA, spec)},
			want: apiclient.Unchanged, wantTok: tokA, wantSpec: spec},
		{name: "another secret keeps its ID", existing: []runtime.Object{Secret(tokOther, Spec{Description: "theirs"})},
			wantErr: ErrIDTaken, wantTok: tokOther, wantSpec: Spec{Description: "theirs"}},
		{name: "a malformed Secret is not overwritten", existing: []runtime.Object{malformed()}, wantErr: ErrIDTaken},
		{name: "a create that lost a race is retried",
			react: func(cs *fake.Clientset) {
				failOnce(cs, "create", apierrors.NewAlreadyExists(secretsResource, SecretName(tokA.ID)))
			},
			want: apiclient.Created, wantTok: tokA, wantSpec: spec},
		{name: "an update conflict is retried", existing: []runtime.Object{Secret(tokA, Spec{Description: "old"})},
			react: func(cs *fake.Clientset) {
				failOnce(cs, "update", apierrors.NewConflict(secretsResource, SecretName(tokA.ID), errors.New("stale")))
			},
			want: apiclient.Updated, wantTok: tokA, wantSpec: spec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, cs, log := newTestStore(t, tc.existing...)
			if tc.react != nil {
				tc.react(cs)
			}
			got, err := s.Create(context.Background(), tokA, spec)
			checkNoSecret(t, err, log)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("Create() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "bootstrap token abcdef") {
				t.Errorf("Create() error = %v, want it to name the token ID", err)
			}
			if got != tc.want {
				t.Errorf("Create() = %s, want %s", got, tc.want)
			}
			if tc.wantTok.IsZero() {
				return
			}
			tok, gotSpec, ok := stored(t, cs, tokA.ID)
			if !ok || !tok.Equal(tc.wantTok) {
				t.Errorf("stored token %s (found %t), want %s", tok.Redacted(), ok, tc.wantTok.Redacted())
			}
			if diff := cmp.Diff(tc.wantSpec, gotSpec); diff != "" {
				t.Errorf("stored spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStoreCreateAPIError(t *testing.T) {
	s, cs, log := newTestStore(t)
	cs.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(secretsResource, SecretName(tokA.ID), errors.New("no"))
	})
	_, err := s.Create(context.Background(), tokA, Spec{})
	checkNoSecret(t, err, log)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "abcdef.<redacted>") {
		t.Fatalf("Create() error = %v, want Forbidden naming abcdef.<redacted>", err)
	}
}

func TestStoreCreateOwner(t *testing.T) {
	s, _, log := newTestStore(t)
	sec, out, err := s.CreateOwner(context.Background(), tokA, Spec{Expires: storeNow.Add(2 * time.Hour)})
	checkNoSecret(t, err, log)
	if err != nil || out != apiclient.Created {
		t.Fatalf("CreateOwner() = %s, %v; want created", out, err)
	}
	if sec == nil || sec.Name != "bootstrap-token-abcdef" || sec.Namespace != "kube-system" {
		t.Fatalf("CreateOwner() returned %v, want Secret kube-system/bootstrap-token-abcdef", sec)
	}
}

func TestStoreEnsureJoinToken(t *testing.T) {
	want := joinSpec(storeNow.Add(24 * time.Hour))
	forever := joinSpec(time.Time{})
	tests := []struct {
		name     string
		existing runtime.Object
		want     Spec
		wantOut  apiclient.Outcome
		wantSpec Spec // returned and stored
		wantErr  error
		wantLog  string
	}{
		{name: "new", want: want, wantOut: apiclient.Created, wantSpec: want},
		{name: "half its lifetime left is kept", existing: Secret(tokA, joinSpec(storeNow.Add(12*time.Hour))), want: want,
			wantOut: apiclient.Unchanged, wantSpec: joinSpec(storeNow.Add(12 * time.Hour))},
		{name: "less than half is rewritten", existing: Secret(tokA, joinSpec(storeNow.Add(12*time.Hour-time.Second))), want: want,
			wantOut: apiclient.Updated, wantSpec: want},
		{name: "expired is rewritten", existing: Secret(tokA, joinSpec(storeNow.Add(-time.Second))), want: want,
			wantOut: apiclient.Updated, wantSpec: want},
		{name: "never expiring is rewritten for an expiring want", existing: Secret(tokA, forever), want: want,
			wantOut: apiclient.Updated, wantSpec: want},
		{name: "an expiring one is rewritten for a never expiring want", existing: Secret(tokA, want), want: forever,
			wantOut: apiclient.Updated, wantSpec: forever},
		{name: "never expiring is kept for a never expiring want", existing: Secret(tokA, forever), want: forever,
			wantOut: apiclient.Unchanged, wantSpec: forever},
		{name: "a token that cannot join is rewritten",
			existing: Secret(tokA, Spec{Expires: storeNow.Add(24 * time.Hour), Usages: []string{UsageSigning}}), want: want,
			wantOut: apiclient.Updated, wantSpec: want},
		{name: "a malformed Secret is rewritten", existing: malformed(), want: want,
			wantOut: apiclient.Updated, wantSpec: want, wantLog: "rewriting a malformed bootstrap token secret"},
		{name: "another secret is an error", existing: Secret(tokOther, want), want: want, wantErr: ErrIDTaken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var objs []runtime.Object
			if tc.existing != nil {
				objs = append(objs, tc.existing)
			}
			s, cs, log := newTestStore(t, objs...)
			spec, out, err := s.EnsureJoinToken(context.Background(), tokA, tc.want, storeNow)
			checkNoSecret(t, err, log)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("EnsureJoinToken() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if tok, _, _ := stored(t, cs, tokA.ID); !tok.Equal(tokOther) {
					t.Errorf("the other token's Secret was changed")
				}
				return
			}
			if out != tc.wantOut {
				t.Errorf("EnsureJoinToken() outcome = %s, want %s", out, tc.wantOut)
			}
			if diff := cmp.Diff(tc.wantSpec, spec); diff != "" {
				t.Errorf("EnsureJoinToken() spec (-want +got):\n%s", diff)
			}
			tok, storedSpec, ok := stored(t, cs, tokA.ID)
			if !ok || !tok.Equal(tokA) {
				t.Fatalf("stored token %s (found %t), want %s", tok.Redacted(), ok, tokA.Redacted())
			}
			if diff := cmp.Diff(tc.wantSpec, storedSpec); diff != "" {
				t.Errorf("stored spec (-want +got):\n%s", diff)
			}
			if !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, log.String())
			}
		})
	}
}

func TestStoreGet(t *testing.T) {
	t.Run("found", func(t *testing.T) {
		s, _, _ := newTestStore(t, Secret(tokA, Spec{Description: "d"}))
		tok, spec, found, err := s.Get(context.Background(), "abcdef")
		if err != nil || !found || !tok.Equal(tokA) || spec.Description != "d" {
			t.Fatalf("Get() = %s, %+v, %t, %v", tok.Redacted(), spec, found, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		s, _, _ := newTestStore(t)
		if _, _, found, err := s.Get(context.Background(), "abcdef"); found || err != nil {
			t.Fatalf("Get() found %t, error %v; want neither", found, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		s, _, log := newTestStore(t, malformed())
		_, _, found, err := s.Get(context.Background(), "abcdef")
		checkNoSecret(t, err, log)
		if found || !errors.Is(err, ErrNotToken) {
			t.Fatalf("Get() found %t, error %v; want ErrNotToken", found, err)
		}
	})
	t.Run("a transient error is retried", func(t *testing.T) {
		s, cs, _ := newTestStore(t, Secret(tokA, Spec{}))
		failOnce(cs, "get", apierrors.NewServiceUnavailable("restarting"))
		if _, _, found, err := s.Get(context.Background(), "abcdef"); !found || err != nil {
			t.Fatalf("Get() found %t, error %v; want found", found, err)
		}
	})
	t.Run("a lasting error is an error", func(t *testing.T) {
		s, cs, _ := newTestStore(t, Secret(tokA, Spec{}))
		cs.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(secretsResource, "bootstrap-token-abcdef", errors.New("no"))
		})
		_, _, _, err := s.Get(context.Background(), "abcdef")
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "reading Secret kube-system/bootstrap-token-abcdef") {
			t.Fatalf("Get() error = %v, want Forbidden naming the Secret", err)
		}
	})
}

func TestStoreOwner(t *testing.T) {
	owner := Secret(tokA, Spec{Expires: storeNow.Add(time.Hour), Description: "owner"})
	owner.UID = "uid-1"
	ref := func(kind, name string, uid types.UID) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "v1", Kind: kind, Name: name, UID: uid}
	}
	tests := []struct {
		name      string
		ref       metav1.OwnerReference
		wantFound bool
		wantErr   error
	}{
		{name: "the owner", ref: ref("Secret", "bootstrap-token-abcdef", "uid-1"), wantFound: true},
		{name: "without a UID", ref: ref("Secret", "bootstrap-token-abcdef", ""), wantFound: true},
		{name: "a new Secret of the same name", ref: ref("Secret", "bootstrap-token-abcdef", "uid-0")},
		{name: "gone", ref: ref("Secret", "bootstrap-token-zzzzzz", "")},
		{name: "not a token Secret", ref: ref("Secret", "kubeadm-certs", "")},
		{name: "not a Secret", ref: ref("ConfigMap", "bootstrap-token-abcdef", "uid-1")},
		{name: "malformed", ref: ref("Secret", "bootstrap-token-cccccc", ""), wantErr: ErrNotToken},
	}
	bad := Secret(Token{ID: "cccccc", Secret: "cccccccccccccccc"}, Spec{})
	bad.Data["token-id"] = []byte("x")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, log := newTestStore(t, owner, bad)
			tok, spec, found, err := s.Owner(context.Background(), tc.ref)
			checkNoSecret(t, err, log)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("Owner() error = %v, want %v", err, tc.wantErr)
			}
			if found != tc.wantFound {
				t.Fatalf("Owner() found = %t, want %t", found, tc.wantFound)
			}
			if found && (!tok.Equal(tokA) || spec.Description != "owner") {
				t.Errorf("Owner() = %s %+v, want the owner token", tok.Redacted(), spec)
			}
		})
	}
}

func TestStoreDelete(t *testing.T) {
	tests := []struct {
		name    string
		react   func(*fake.Clientset)
		id      string
		wantErr error
		wantMsg string
	}{
		{name: "existing", id: "abcdef"},
		{name: "missing", id: "zzzzzz", wantErr: ErrNotFound,
			wantMsg: `deleting token "zzzzzz": bootstrap token not found (no Secret kube-system/bootstrap-token-zzzzzz)`},
		{name: "a transient error is retried", id: "abcdef",
			react: func(cs *fake.Clientset) { failOnce(cs, "delete", apierrors.NewServiceUnavailable("restarting")) }},
		{name: "a lasting error names the Secret", id: "abcdef", wantErr: errForbidden,
			react: func(cs *fake.Clientset) {
				cs.PrependReactor("delete", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, errForbidden
				})
			},
			wantMsg: "deleting Secret kube-system/bootstrap-token-abcdef: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, cs, log := newTestStore(t, Secret(tokA, Spec{}))
			if tc.react != nil {
				tc.react(cs)
			}
			err := s.Delete(context.Background(), tc.id)
			checkNoSecret(t, err, log)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("Delete() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("Delete() error = %v, want it to contain %q", err, tc.wantMsg)
				}
				return
			}
			if _, _, ok := stored(t, cs, tc.id); ok {
				t.Errorf("token %s is still stored", tc.id)
			}
		})
	}
}

var errForbidden = apierrors.NewForbidden(secretsResource, "bootstrap-token-abcdef", errors.New("no"))

func TestStoreList(t *testing.T) {
	b := Token{ID: "bbbbbb", Secret: "bbbbbbbbbbbbbbbb"}
	z := Token{ID: "zzzzzz", Secret: "zzzzzzzzzzzzzzzz"}
	broken := Secret(Token{ID: "cccccc", Secret: "cccccccccccccccc"}, Spec{})
	broken.Data["token-secret"] = []byte("short")
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "kube-system"}, Type: corev1.SecretTypeOpaque}
	s, _, log := newTestStore(t, Secret(z, Spec{}), Secret(tokA, joinSpec(storeNow)), broken, opaque, Secret(b, Spec{Description: "b"}))
	got, err := s.List(context.Background())
	checkNoSecret(t, err, log)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Token: tokA, Spec: joinSpec(storeNow)}, {Token: b, Spec: Spec{Description: "b"}}, {Token: z}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List() (-want +got):\n%s", diff)
	}
	if !strings.Contains(log.String(), "skipping a malformed bootstrap token Secret") || !strings.Contains(log.String(), "bootstrap-token-cccccc") {
		t.Errorf("log does not name the malformed Secret:\n%s", log.String())
	}

	t.Run("none is an empty list", func(t *testing.T) {
		s, _, _ := newTestStore(t)
		got, err := s.List(context.Background())
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("List() = %#v, %v; want an empty list", got, err)
		}
	})
}

func TestLongestJoinToken(t *testing.T) {
	entry := func(id string, s Spec) Entry { return Entry{Token: Token{ID: id, Secret: id + "0123456789"}, Spec: s} }
	short := entry("aaaaaa", joinSpec(storeNow.Add(time.Hour)))
	long := entry("bbbbbb", joinSpec(storeNow.Add(20*time.Hour)))
	longToo := entry("cccccc", joinSpec(storeNow.Add(20*time.Hour)))
	forever := entry("zzzzzz", joinSpec(time.Time{}))
	expired := entry("dddddd", joinSpec(storeNow))
	cannotSign := entry("eeeeee", Spec{Usages: []string{UsageAuthentication}, Groups: []string{DefaultNodeGroup}})
	noGroup := entry("ffffff", Spec{Usages: []string{UsageAuthentication, UsageSigning}})
	tests := []struct {
		name    string
		entries []Entry
		want    Entry
		wantOK  bool
	}{
		{name: "none"},
		{name: "only unusable", entries: []Entry{expired, cannotSign, noGroup}},
		{name: "the longest", entries: []Entry{short, long, expired}, want: long, wantOK: true},
		{name: "never expiring beats any expiry", entries: []Entry{long, forever, short}, want: forever, wantOK: true},
		{name: "of equals the lowest ID", entries: []Entry{longToo, long}, want: long, wantOK: true},
		{name: "unusable ones never win", entries: []Entry{cannotSign, short, noGroup}, want: short, wantOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := LongestJoinToken(tc.entries, storeNow)
			if ok != tc.wantOK || got.Token.ID != tc.want.Token.ID {
				t.Errorf("LongestJoinToken() = %q, %t; want %q, %t", got.Token.ID, ok, tc.want.Token.ID, tc.wantOK)
			}
		})
	}
}
