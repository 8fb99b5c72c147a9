// Command mkbundle builds (or finds in the cache) the test bundle of pinned Kubernetes and
// etcd binaries and prints its directory. Progress goes to stderr.
//
//	go run ./e2e/mkbundle [-cache-dir DIR] [-verify]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kforge/kforge/e2e/bundle"
)

func main() {
	var opts bundle.Options
	flag.StringVar(&opts.CacheDir, "cache-dir", "", "kforge cache directory (default $"+bundle.CacheDirEnv+" or the user cache directory)")
	verify := flag.Bool("verify", false, "re-hash every file of the bundle against its manifest")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkbundle [-cache-dir DIR] [-verify]")
		os.Exit(2)
	}
	opts.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := bundle.Build(ctx, opts)
	if err == nil && *verify {
		err = b.Verify()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbundle:", err)
		os.Exit(1)
	}
	fmt.Println(b.Dir)
}
