package host

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsLocks holds one *sync.Mutex per known_hosts path, so that many
// hosts dialled at once never interleave their appends.
var knownHostsLocks sync.Map

func lockKnownHosts(path string) (unlock func()) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	mu, _ := knownHostsLocks.LoadOrStore(filepath.Clean(path), new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// loadKnownHosts reads a known_hosts file; a missing file knows no hosts.
func loadKnownHosts(path string) (ssh.HostKeyCallback, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return knownhosts.New()
	}
	cb, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("reading known hosts file %s: %w", path, err)
	}
	return cb, nil
}

// DefaultSystemKnownHostsPath is the system-wide known_hosts file OpenSSH reads.
const DefaultSystemKnownHostsPath = "/etc/ssh/ssh_known_hosts"

// hostKeyVerifier checks a server's host key against the user's known_hosts file and the
// system-wide one, optionally recording unknown keys (in the user's file only), and
// remembers the outcome so that Dial can tell a host key failure from an authentication
// failure.
type hostKeyVerifier struct {
	path   string // the user's known_hosts: read, and the only file new keys are written to
	system string // the system-wide known_hosts: read only
	accept bool
	// dryRun trusts an accepted key for this connection only and writes nothing.
	dryRun bool
	onNew  func(host, fingerprint string)
	logger *slog.Logger
	label  string // the host as messages show it
	host   string // address, for the ssh-keyscan hint
	port   int

	mu       sync.Mutex
	err      error
	verified bool
}

// callback is the ssh.HostKeyCallback.
func (v *hostKeyVerifier) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := v.check(hostname, remote, key)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.err = err
	} else {
		v.verified = true
	}
	return err
}

// outcome reports whether the key was accepted and, if it was refused, why.
func (v *hostKeyVerifier) outcome() (verified bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.verified, v.err
}

// files are the known_hosts files consulted, the user's first.
func (v *hostKeyVerifier) files() []string {
	if v.system == "" || v.system == v.path {
		return []string{v.path}
	}
	return []string{v.path, v.system}
}

// lookup checks key against every known_hosts file. It returns nil when a file lists the
// key and no file holds another key of the same type for the host; a *knownhosts.KeyError
// whose Want lists the conflicting keys when some file holds another key of that type (or,
// with no file listing the key, any key for the host); a *knownhosts.KeyError without Want
// when no file knows the host; and a *knownhosts.RevokedError when any file revokes the
// key. A mismatch anywhere is refused, whichever file accepts the key.
func (v *hostKeyVerifier) lookup(hostname string, remote net.Addr, key ssh.PublicKey) error {
	var accepted bool
	var sameType, otherType []knownhosts.KnownKey
	for _, path := range v.files() {
		cb, err := loadKnownHosts(path)
		if err != nil {
			return err
		}
		err = cb(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		switch {
		case err == nil:
			accepted = true
		case errors.As(err, &keyErr):
			for _, k := range keyErr.Want {
				if k.Key.Type() == key.Type() {
					sameType = append(sameType, k)
				} else {
					otherType = append(otherType, k)
				}
			}
		default:
			var revoked *knownhosts.RevokedError
			if errors.As(err, &revoked) {
				return err
			}
			return fmt.Errorf("checking host key against %s: %w", path, err)
		}
	}
	switch {
	case len(sameType) > 0:
		return &knownhosts.KeyError{Want: sameType}
	case accepted:
		return nil
	default:
		return &knownhosts.KeyError{Want: otherType}
	}
}

func (v *hostKeyVerifier) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := v.lookup(hostname, remote, key)
	var keyErr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &revoked):
		return fmt.Errorf("host key %s %s is marked @revoked at %s:%d; refusing to connect",
			key.Type(), ssh.FingerprintSHA256(key), revoked.Revoked.Filename, revoked.Revoked.Line)
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		return v.changed(hostname, key, keyErr.Want)
	case errors.As(err, &keyErr) && v.accept:
		return v.record(hostname, remote, key)
	case errors.As(err, &keyErr):
		return v.unknown(hostname, key)
	default:
		return err
	}
}

func (v *hostKeyVerifier) unknown(hostname string, key ssh.PublicKey) error {
	keyscan := "ssh-keyscan"
	if t := keyFileType(key.Type()); t != "" {
		keyscan += " -t " + t
	}
	keyscan += fmt.Sprintf(" -p %d %s >> %s", v.port, v.host, v.path)
	hint := ""
	if t := keyFileType(key.Type()); t != "" {
		hint = fmt.Sprintf(" (on the host: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub)", t)
	}
	return fmt.Errorf("%w: the server offered %s key %s and %s has no entry for %s; "+
		"check that fingerprint%s, then trust it with %q, or pass --accept-new-host-keys",
		ErrUnknownHostKey, key.Type(), ssh.FingerprintSHA256(key), strings.Join(v.files(), " nor "), knownhosts.Normalize(hostname), hint, keyscan)
}

func (v *hostKeyVerifier) changed(hostname string, key ssh.PublicKey, want []knownhosts.KnownKey) error {
	old := make([]string, len(want))
	for i, k := range want {
		old[i] = fmt.Sprintf("%s:%d (%s %s)", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key))
	}
	return fmt.Errorf("%w: the server offered %s key %s but the known key for %s is at %s; "+
		"someone may be intercepting the connection, or the host was reinstalled; "+
		"if you are sure it was reinstalled, remove the old key with %q and connect again",
		ErrHostKeyChanged, key.Type(), ssh.FingerprintSHA256(key), knownhosts.Normalize(hostname),
		strings.Join(old, ", "), "ssh-keygen -R '"+knownhosts.Normalize(hostname)+"' -f "+want[0].Filename)
}

// record appends key for hostname to the user's known_hosts file (trust on first use), or
// on a dry run only says it would. It rechecks under the file's lock: another connection
// may have recorded a key for the same host meanwhile.
func (v *hostKeyVerifier) record(hostname string, remote net.Addr, key ssh.PublicKey) error {
	unlock := lockKnownHosts(v.path)
	defer unlock()
	var keyErr *knownhosts.KeyError
	switch err := v.lookup(hostname, remote, key); {
	case err == nil:
		return nil
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		return v.changed(hostname, key, keyErr.Want)
	case !errors.As(err, &keyErr):
		return err
	}
	fp := ssh.FingerprintSHA256(key)
	if v.dryRun {
		v.logger.Info("would record new ssh host key (dry run)", "host", v.label, "type", key.Type(), "fingerprint", fp, "known_hosts", v.path)
	} else {
		if err := appendKnownHost(v.path, knownhosts.Line([]string{hostname}, key)); err != nil {
			return err
		}
		v.logger.Info("recorded new ssh host key", "host", v.label, "type", key.Type(), "fingerprint", fp, "known_hosts", v.path)
	}
	if v.onNew != nil {
		v.onNew(v.label, key.Type()+" "+fp)
	}
	return nil
}

// appendKnownHost appends line to the file at path, creating it (0600, in a
// 0700 directory) when missing.
func appendKnownHost(path, line string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("recording host key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("recording host key: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("recording host key in %s: %w", path, err)
	}
	if fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("recording host key in %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("recording host key in %s: %w", path, err)
	}
	return nil
}

// placeholderKey never appears in a known_hosts file; looking it up yields
// the keys known for a host.
var placeholderKey = func() ssh.PublicKey {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

// hostKeyAlgorithms returns the host key algorithms to offer when dialling
// hostport: those of the keys known_hosts has for it first, then the rest.
// Without this the server may pick a key type known_hosts does not hold for
// the host and the connection fails as if the key had changed. It returns
// nil (the library defaults) for hosts known_hosts does not list.
func (v *hostKeyVerifier) hostKeyAlgorithms(hostport string) ([]string, error) {
	var want []knownhosts.KnownKey
	for _, path := range v.files() {
		cb, err := loadKnownHosts(path)
		if err != nil {
			return nil, err
		}
		var keyErr *knownhosts.KeyError
		if err := cb(hostport, &net.TCPAddr{IP: net.IPv4zero}, placeholderKey); errors.As(err, &keyErr) {
			want = append(want, keyErr.Want...)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	var algos []string
	add := func(a string) {
		if !slices.Contains(algos, a) {
			algos = append(algos, a)
		}
	}
	for _, k := range want {
		for _, a := range algorithmsForKeyType(k.Key.Type()) {
			add(a)
		}
	}
	for _, a := range ssh.SupportedAlgorithms().HostKeys {
		add(a)
	}
	add(ssh.KeyAlgoRSA)
	return algos, nil
}

// algorithmsForKeyType lists the signature algorithms a host key of type t
// can be negotiated with.
func algorithmsForKeyType(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}

// keyFileType is the name ssh-keyscan -t and /etc/ssh/ssh_host_*_key use for
// a key type, or "".
func keyFileType(t string) string {
	switch {
	case t == ssh.KeyAlgoED25519:
		return "ed25519"
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	case strings.HasPrefix(t, "ecdsa-sha2-"):
		return "ecdsa"
	}
	return ""
}
