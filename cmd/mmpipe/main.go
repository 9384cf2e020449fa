// Command mmpipe takes multi-modal recommendation data from raw dumps to
// datasets, features and trained models. Each stage is a subcommand; see the
// README for the whole tour.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mmpipe/mmpipe/store"
)

// Exit codes (DESIGN.md, Contracts).
const (
	exitOK          = 0
	exitInternal    = 1
	exitBadInput    = 2
	exitInterrupted = 3
	exitResource    = 4
)

// Build information, stamped with -ldflags "-X main.version=...".
var (
	version   = "0.1.0-dev"
	commit    = "unknown"
	buildTime = "unknown"
)

// usageError marks bad usage (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	var use usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return exitInterrupted
	case errors.Is(err, store.ErrBadInput), errors.As(err, &use):
		return exitBadInput
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.ENOMEM):
		return exitResource
	}
	return exitInternal
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp()
	root := app.rootCommand()
	err := root.ExecuteContext(ctx)
	code := exitCode(err)
	if err != nil {
		if ctx.Err() != nil {
			code = exitInterrupted
			err = fmt.Errorf("interrupted (re-run to resume): %w", err)
		}
		fmt.Fprintln(os.Stderr, "mmpipe:", err)
	}
	os.Exit(code)
}
