package onnx

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// findModel returns the model file of a preset: dir itself when it is an
// .onnx file, else the first of the preset's file names found in dir.
func findModel(dir string, names []string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("no model folder given (--model-dir)")
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("model folder: %w", err)
	}
	if !st.IsDir() {
		if strings.HasSuffix(dir, ".onnx") {
			return dir, nil
		}
		return "", fmt.Errorf("model path %s is neither a folder nor an .onnx file", dir)
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no model in %s: looked for %s", dir, strings.Join(names, ", "))
}

// tokenizerDirs are the folders searched for a tokenizer: the model's
// folder, and its parent when the model sits in an onnx/ sub-folder (the
// Hugging Face layout).
func tokenizerDirs(modelDir, modelPath string) []string {
	dirs := []string{filepath.Dir(modelPath)}
	if st, err := os.Stat(modelDir); err == nil && st.IsDir() {
		dirs = append(dirs, modelDir)
	}
	if filepath.Base(filepath.Dir(modelPath)) == "onnx" {
		dirs = append(dirs, filepath.Dir(filepath.Dir(modelPath)))
	}
	return dedupe(dirs)
}

// fileSHA256 hashes a file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// elemName is a short name of an ONNX element type.
func elemName(t ort.TensorElementDataType) string {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return "float32"
	case ort.TensorElementDataTypeFloat16:
		return "float16"
	case ort.TensorElementDataTypeDouble:
		return "float64"
	case ort.TensorElementDataTypeInt64:
		return "int64"
	case ort.TensorElementDataTypeInt32:
		return "int32"
	case ort.TensorElementDataTypeBool:
		return "bool"
	case ort.TensorElementDataTypeString:
		return "string"
	}
	return strings.ToLower(strings.TrimPrefix(t.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_"))
}

// dimsString shows a model's dimensions, "?" for a dynamic axis.
func dimsString(dims []int64) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		if d < 0 {
			parts[i] = "?"
		} else {
			parts[i] = strconv.FormatInt(d, 10)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// infoString shows a model input or output.
func infoString(io ort.InputOutputInfo) string {
	if io.OrtValueType != ort.ONNXTypeTensor {
		return fmt.Sprintf("%s (%s)", io.Name, io.OrtValueType)
	}
	return fmt.Sprintf("%s %s %s", io.Name, elemName(io.DataType), dimsString(io.Dimensions))
}

func listString(ios []ort.InputOutputInfo) string {
	parts := make([]string, len(ios))
	for i, io := range ios {
		parts[i] = infoString(io)
	}
	return strings.Join(parts, ", ")
}

// tensorSpec is what a preset expects of one model input or output.
type tensorSpec struct {
	name  string
	types []ort.TensorElementDataType
	// dims: a size, or -1 for any size (a batch axis, a sequence axis).
	dims []int64
}

func (s tensorSpec) String() string {
	var ts []string
	for _, t := range s.types {
		ts = append(ts, elemName(t))
	}
	ds := make([]string, len(s.dims))
	for i, d := range s.dims {
		if d < 0 {
			ds[i] = "N"
		} else {
			ds[i] = strconv.FormatInt(d, 10)
		}
	}
	return fmt.Sprintf("%s %s [%s]", s.name, strings.Join(ts, "|"), strings.Join(ds, " "))
}

// match checks a model tensor against the spec; a dynamic axis in the
// model matches any expected size.
func (s tensorSpec) match(io ort.InputOutputInfo) bool {
	if io.OrtValueType != ort.ONNXTypeTensor || !slices.Contains(s.types, io.DataType) || len(io.Dimensions) != len(s.dims) {
		return false
	}
	for i, d := range io.Dimensions {
		if d >= 0 && s.dims[i] >= 0 && d != s.dims[i] {
			return false
		}
	}
	return true
}

// modelIO is a model's inputs and outputs as ONNX Runtime reports them.
type modelIO struct {
	path            string
	inputs, outputs []ort.InputOutputInfo
}

// readModelIO asks ONNX Runtime for a model's inputs and outputs (it
// loads the model once, without graph optimisation).
func readModelIO(path string) (*modelIO, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
		return nil, fmt.Errorf("onnx session options: %w", err)
	}
	in, out, err := ort.GetInputOutputInfoWithOptions(path, opts)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	return &modelIO{path: path, inputs: in, outputs: out}, nil
}

func find(ios []ort.InputOutputInfo, name string) (ort.InputOutputInfo, bool) {
	for _, io := range ios {
		if io.Name == name {
			return io, true
		}
	}
	return ort.InputOutputInfo{}, false
}

// mismatch is the error for a model that does not fit a preset.
type mismatch struct {
	preset, path string
	problems     []string
	found        string
}

func (m *mismatch) add(format string, args ...any) {
	m.problems = append(m.problems, fmt.Sprintf(format, args...))
}

func (m *mismatch) err() error {
	if len(m.problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: model %s does not match the preset: %s (the model has %s)",
		m.preset, m.path, strings.Join(m.problems, "; "), m.found)
}

// check compares one tensor with its spec.
func (m *mismatch) check(kind string, ios []ort.InputOutputInfo, s tensorSpec) (ort.InputOutputInfo, bool) {
	io, ok := find(ios, s.name)
	if !ok {
		m.add("no %s %q: expected %s", kind, s.name, s)
		return io, false
	}
	if !s.match(io) {
		m.add("%s %q: found %s, expected %s", kind, s.name, infoString(io), s)
		return io, false
	}
	return io, true
}
