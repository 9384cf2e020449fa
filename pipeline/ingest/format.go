package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Format reads one family of source files into a Builder.
type Format interface {
	// Name is the --format value.
	Name() string
	// Describe says in one line what files the format reads.
	Describe() string
	// NewBuilder returns a builder with the format's id rule (dense or
	// first-appearance indices).
	NewBuilder() *Builder
	// Read streams the input files (already expanded and sorted) into b.
	Read(ctx context.Context, files []string, b *Builder, opts *Options) error
}

// Formats returns every supported source format by name.
func Formats() map[string]Format {
	fs := []Format{
		mmsslFormat{}, mmrecFormat{}, recboleFormat{},
		amazon2014Format{}, amazon2018Format{}, netflixFormat{}, bilibiliFormat{}, movielensFormat{},
	}
	m := make(map[string]Format, len(fs))
	for _, f := range fs {
		m[f.Name()] = f
	}
	return m
}

// FormatNames lists the format names, sorted.
func FormatNames() []string {
	var names []string
	for n := range Formats() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Run ingests inputs (files or folders) with the named format.
func Run(ctx context.Context, format string, inputs []string, opts Options) (*Tables, *Report, error) {
	f, ok := Formats()[format]
	if !ok {
		return nil, nil, &BadInputError{File: "--format", Err: fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(FormatNames(), ", "))}
	}
	if len(inputs) == 0 {
		return nil, nil, &BadInputError{File: "--input", Err: fmt.Errorf("no input files given")}
	}
	files, err := expandInputs(inputs)
	if err != nil {
		return nil, nil, err
	}
	b := f.NewBuilder()
	if err := f.Read(ctx, files, b, &opts); err != nil {
		return nil, b.Report, err
	}
	t, err := b.Finish()
	if err != nil {
		return nil, b.Report, err
	}
	return t, b.Report, nil
}
