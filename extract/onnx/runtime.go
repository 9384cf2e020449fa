package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the environment variable that names the ONNX Runtime
// shared library (the one onnxruntime_go's own tests use).
const LibraryEnv = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// LibraryRelPath is where `make ort` installs ONNX Runtime, relative to
// the module root.
const LibraryRelPath = ".ort/libonnxruntime.so.1"

// ORTVersion is the ONNX Runtime release the project pins (npm
// onnxruntime-node, C API 25 as onnxruntime_go v1.30.0 needs).
const ORTVersion = "1.30.0"

// LibraryPath resolves the ONNX Runtime shared library: explicit (the
// --ort-lib flag, Options.ORTLib) if set, else $ONNXRUNTIME_SHARED_LIBRARY_PATH,
// else the first .ort/libonnxruntime.so.1 found in the folder of the
// running executable or one of its parents (bin/mmpipe finds the module's
// .ort/), then in the working directory or one of its parents.
func LibraryPath(explicit string) (string, error) {
	if explicit != "" {
		return checkFile(explicit, "--ort-lib")
	}
	if env := os.Getenv(LibraryEnv); env != "" {
		return checkFile(env, "$"+LibraryEnv)
	}
	var tried []string
	var starts []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		starts = append(starts, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, LibraryRelPath)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
			tried = append(tried, p)
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("ONNX Runtime library not found: run `make ort` (installs ONNX Runtime %s into %s), or set --ort-lib or $%s; looked for %s",
		ORTVersion, LibraryRelPath, LibraryEnv, strings.Join(dedupe(tried), ", "))
}

func checkFile(p, from string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("ONNX Runtime library from %s: %w", from, err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("ONNX Runtime library from %s: %s is a folder", from, p)
	}
	return p, nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// ortEnv is the process-wide ONNX Runtime environment. ONNX Runtime has
// one environment per process (onnxruntime_go keeps it, and the dlopen'ed
// library, in its own package state), so this holder is the one piece of
// package-level mutable state in mmpipe's extract packages: it loads the
// library once, under a mutex, and is never torn down while the process
// runs. A failed load may be retried (with another path, say); once a
// library is loaded, asking for a different one is an error.
var ortEnv struct {
	mu   sync.Mutex
	path string // the loaded library; "" until loaded
}

// InitRuntime loads ONNX Runtime from the library LibraryPath(explicit)
// resolves and initialises its environment, once per process. It returns
// the library's path.
func InitRuntime(explicit string) (string, error) {
	path, err := LibraryPath(explicit)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("ONNX Runtime library %s: %w", path, err)
	}
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if ortEnv.path != "" {
		if !sameFile(ortEnv.path, abs) {
			return "", fmt.Errorf("ONNX Runtime is already loaded from %s; cannot load %s in the same process", ortEnv.path, abs)
		}
		return ortEnv.path, nil
	}
	if ort.IsInitialized() {
		return "", errors.New("ONNX Runtime was initialised outside mmpipe's extract/onnx package")
	}
	ort.SetSharedLibraryPath(abs)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return "", fmt.Errorf("load ONNX Runtime %s (want version %s, C API 25): %w", abs, ORTVersion, err)
	}
	ortEnv.path = abs
	return abs, nil
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// RuntimeVersion returns the loaded ONNX Runtime's version string, or ""
// before InitRuntime.
func RuntimeVersion() string {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if ortEnv.path == "" {
		return ""
	}
	return ort.GetVersion()
}

// Device names.
const (
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// cudaHelp says what the CUDA execution provider needs (research/deps.md §3.2).
const cudaHelp = "the library from `make ort` (npm onnxruntime-node) is ONNX Runtime's CPU build. " +
	"CUDA needs a GPU build of the same ONNX Runtime version: libonnxruntime_providers_cuda.so and " +
	"libonnxruntime_providers_shared.so next to libonnxruntime.so.1 (for example from ONNX Runtime's " +
	"onnxruntime-linux-x64-gpu release, or npm com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9, which is ORT 1.29.0 " +
	"for CUDA 13: use it with a 1.29.0 core library via --ort-lib; the C API 25 that mmpipe uses works with any ORT >= 1.25), " +
	"the CUDA runtime it was built for (libcudart, libcublas, libcublasLt, libcurand, libcufft) and cuDNN 9 on " +
	"LD_LIBRARY_PATH, and an NVIDIA driver for that CUDA version (see research/deps.md §3.2)"

// sessionOptions builds session options: intra-op threads (0: the number
// of cores), one inter-op thread, sequential execution, all graph
// optimisations, and the CUDA execution provider for device "cuda".
func sessionOptions(device string, threads int) (*ort.SessionOptions, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx session options: %w", err)
	}
	fail := func(err error) (*ort.SessionOptions, error) {
		opts.Destroy()
		return nil, err
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return fail(fmt.Errorf("onnx session options: intra-op threads %d: %w", threads, err))
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return fail(fmt.Errorf("onnx session options: inter-op threads: %w", err))
	}
	if err := opts.SetExecutionMode(ort.ExecutionModeSequential); err != nil {
		return fail(fmt.Errorf("onnx session options: execution mode: %w", err))
	}
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return fail(fmt.Errorf("onnx session options: graph optimisation: %w", err))
	}
	switch device {
	case "", DeviceCPU:
	case DeviceCUDA:
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return fail(fmt.Errorf("--device cuda: the CUDA execution provider is not available (%v); %s", err, cudaHelp))
		}
		defer cuda.Destroy()
		if err := opts.AppendExecutionProviderCUDA(cuda); err != nil {
			return fail(fmt.Errorf("--device cuda: the CUDA execution provider is not available (%v); %s", err, cudaHelp))
		}
	default:
		return fail(fmt.Errorf("device %q: want %q or %q", device, DeviceCPU, DeviceCUDA))
	}
	return opts, nil
}
