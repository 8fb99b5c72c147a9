package config

import (
	"fmt"
	"path"
	"strings"
	"unicode"
)

// systemDirs are directories of the operating system that kforge must never take as its
// own: it creates its directories with mode 0700 and reset empties them, so a setting that
// names one of these, or a parent of one, would break the machine or lose its data.
var systemDirs = []string{
	"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
	"/lost+found", "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv",
	"/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec",
	"/usr/local", "/usr/local/bin", "/usr/sbin", "/usr/share", "/var", "/var/cache",
	"/var/lib", "/var/log", "/var/run", "/var/spool", "/var/tmp",
}

// DirProblem checks a directory that kforge writes into, and that reset empties: a
// directory setting of cluster.toml or a directory flag. It returns "" when dir is
// acceptable, else a complete message that quotes dir, says what is wrong and what would be
// valid, using example as the example. The rule: an absolute, clean path ("/a/b", no "..",
// "." or doubled or trailing '/', no white space or control characters at either end or
// control characters anywhere) that is neither a system directory nor a parent of one.
func DirProblem(dir, example string) string {
	var what string
	switch {
	case dir == "":
		what = "is empty"
	case strings.ContainsFunc(dir, unicode.IsControl):
		what = "contains control characters"
	case strings.TrimSpace(dir) != dir:
		what = "starts or ends with white space"
	case !path.IsAbs(dir):
		what = "is not an absolute path"
	case path.Clean(dir) != dir:
		what = fmt.Sprintf("is not a clean path (it means %q)", path.Clean(dir))
	case dir == "/":
		what = "is the root directory"
	default:
		for _, sys := range systemDirs {
			switch {
			case dir == sys:
				what = "is a system directory"
			case strings.HasPrefix(sys, dir+"/"):
				what = fmt.Sprintf("is a parent of the system directory %s", sys)
			default:
				continue
			}
			break
		}
	}
	if what == "" {
		return ""
	}
	return fmt.Sprintf("%s %s; want an absolute, clean path of a directory kforge may own, not a system directory or a parent of one, such as %q",
		quoteValue(dir), what, example)
}
