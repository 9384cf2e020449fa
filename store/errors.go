package store

import (
	"errors"
	"fmt"
)

// ErrBadInput is the sentinel every stage's input errors match with
// errors.Is: a missing or malformed file, an inconsistent shard, a feature
// file of another dataset. The CLI maps it to exit code 2 (bad usage or bad
// input); anything else is an internal error.
var ErrBadInput = errors.New("bad input")

// badInputError is an error of the user's input that reads as its cause.
type badInputError struct{ err error }

func (e *badInputError) Error() string        { return e.err.Error() }
func (e *badInputError) Unwrap() error        { return e.err }
func (e *badInputError) Is(target error) bool { return target == ErrBadInput }

// BadInputf formats an error that matches ErrBadInput.
func BadInputf(format string, args ...any) error {
	return &badInputError{fmt.Errorf(format, args...)}
}
