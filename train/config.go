package train

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mmpipe/mmpipe/train/eval"
)

// ModelConfig is a model's configuration: a pointer to a struct whose
// fields carry yaml and json tags (the keys under `model.`), filled with
// the reference implementation's defaults by the model's factory.
type ModelConfig interface {
	// Validate checks the values; errors name the offending key without
	// the "model." prefix, e.g. "dim: must be positive, got 0".
	Validate() error
}

// Config is a run's configuration: the trainer's keys at the top level and
// the model's under `model`. Every key can be set from a YAML file and with
// --set key=value (dotted keys, e.g. model.dim=128).
type Config struct {
	// Seed seeds parameter initialisation and sampling.
	Seed uint64 `yaml:"seed" json:"seed"`
	// Epochs is the maximum number of training epochs.
	Epochs int `yaml:"epochs" json:"epochs"`
	// Patience stops training after this many validations in a row
	// without improvement of SelectMetric (0: never stop early).
	Patience int `yaml:"patience" json:"patience"`
	// MinEpochs disables early stopping before this many epochs (0: from
	// the first). Small datasets can need tens of epochs before the first
	// validation gain (MF-BPR on 14k interactions: about 25), which a
	// patience shorter than that ends before training took off.
	MinEpochs int `yaml:"min_epochs" json:"min_epochs"`
	// EvalEvery validates every N epochs (and after the last).
	EvalEvery int `yaml:"eval_every" json:"eval_every"`
	// CheckpointEvery writes checkpoints/last.ckpt every N epochs (the best
	// checkpoint is written whenever validation improves; an interrupt
	// always writes one).
	CheckpointEvery int `yaml:"checkpoint_every" json:"checkpoint_every"`
	// Protocol is the evaluation protocol (default: the model's).
	Protocol string `yaml:"protocol" json:"protocol"`
	// Ks are the metric cut-offs.
	Ks []int `yaml:"ks" json:"ks"`
	// SelectMetric is the validation metric that selects the checkpoint
	// (default: the protocol's, e.g. recall@20 for graph).
	SelectMetric string `yaml:"select_metric" json:"select_metric"`
	// NDCGNGCF adds MMSSL's NGCF-style NDCG (ndcg_ngcf@K).
	NDCGNGCF bool `yaml:"ndcg_ngcf" json:"ndcg_ngcf"`
	// EvalBatch is the number of users scored per block.
	EvalBatch int `yaml:"eval_batch" json:"eval_batch"`
	// Threads is the number of worker goroutines of the kernels and the
	// evaluation (0: GOMAXPROCS).
	Threads int `yaml:"threads" json:"threads"`
	// RecommendK writes the top-K recommendations of every user to
	// recommendations.parquet at the end of the run (0: none).
	RecommendK int `yaml:"recommend_k" json:"recommend_k"`
	// Model holds the model's own keys.
	Model ModelConfig `yaml:"model" json:"model"`
}

// DefaultConfig returns the trainer defaults around a model config.
func DefaultConfig(model ModelConfig) *Config {
	return &Config{
		Seed:            2023,
		Epochs:          1000,
		Patience:        20,
		EvalEvery:       1,
		CheckpointEvery: 1,
		Ks:              []int{10, 20, 50},
		EvalBatch:       256,
		RecommendK:      0,
		Model:           model,
	}
}

// ConfigError is a configuration mistake: an unknown key, a value of the
// wrong type, or a value out of range. Key names the key (dotted).
type ConfigError struct {
	Source string // "--set", a file name, or "" for validation
	Key    string
	Err    error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.Source != "" {
		b.WriteString(" ")
		b.WriteString(e.Source)
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// yamlName returns the yaml key of a struct field ("" if none).
func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// structOf follows interfaces and pointers down to a struct value.
func structOf(v reflect.Value) (reflect.Value, bool) {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return v, false
		}
		v = v.Elem()
	}
	return v, v.Kind() == reflect.Struct
}

// keysOf lists the yaml keys of a struct value.
func keysOf(s reflect.Value) []string {
	var keys []string
	for i := range s.NumField() {
		if n := yamlName(s.Type().Field(i)); n != "" {
			keys = append(keys, n)
		}
	}
	return keys
}

// lookup returns the settable field for a dotted key.
func lookup(root any, key string) (reflect.Value, error) {
	v := reflect.ValueOf(root)
	parts := strings.Split(key, ".")
	for k, part := range parts {
		s, ok := structOf(v)
		if !ok {
			return reflect.Value{}, fmt.Errorf("%s is a value, not a section", strings.Join(parts[:k], "."))
		}
		found := false
		for i := range s.NumField() {
			if yamlName(s.Type().Field(i)) == part {
				v, found = s.Field(i), true
				break
			}
		}
		if !found {
			where := "the top level"
			if k > 0 {
				where = strings.Join(parts[:k], ".")
			}
			return reflect.Value{}, fmt.Errorf("unknown key (keys of %s: %s)", where, strings.Join(keysOf(s), ", "))
		}
	}
	if _, isStruct := structOf(v); isStruct {
		return reflect.Value{}, fmt.Errorf("is a section; set its keys (%s.%s)", key, strings.Join(keysOf(mustStruct(v)), ", "+key+"."))
	}
	return v, nil
}

func mustStruct(v reflect.Value) reflect.Value { s, _ := structOf(v); return s }

// setNode decodes a YAML node into the field, replacing its value.
func setNode(field reflect.Value, n *yaml.Node) error {
	if err := checkIntegral(field.Type(), n); err != nil {
		return err
	}
	ptr := reflect.New(field.Type())
	if err := n.Decode(ptr.Interface()); err != nil {
		return typeError(field.Type(), err)
	}
	field.Set(ptr.Elem())
	return nil
}

// checkIntegral refuses a fractional number for an integer key (yaml.v3
// would truncate 1.5 to 1).
func checkIntegral(t reflect.Type, n *yaml.Node) error {
	switch t.Kind() {
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				if err := checkIntegral(t.Elem(), c); err != nil {
					return err
				}
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			return fmt.Errorf("want %s, got %s", kindName(t), n.Value)
		}
	}
	return nil
}

// typeError turns yaml's decode error into "want an integer: ...".
func typeError(t reflect.Type, err error) error {
	msg := err.Error()
	if te := (*yaml.TypeError)(nil); errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
		if _, after, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
			msg = after
		}
	}
	return fmt.Errorf("want %s: %s", kindName(t), msg)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(kindName(t.Elem()), "an "), "a ") + "s (e.g. [10,20] or 10,20)"
	}
	return t.String()
}

// Set applies one --set override "key=value" to cfg. The value is parsed
// as YAML for the key's type: integers, numbers (1e-4), true/false,
// strings (taken verbatim), and lists as [a, b] or a,b.
func Set(cfg *Config, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return &ConfigError{Source: "--set", Key: kv, Err: errors.New("want key=value")}
	}
	field, err := lookup(cfg, key)
	if err != nil {
		return &ConfigError{Source: "--set", Key: key, Err: err}
	}
	if field.Kind() == reflect.String {
		field.SetString(val)
		return nil
	}
	val = strings.TrimSpace(val)
	if field.Kind() == reflect.Slice && !strings.HasPrefix(val, "[") {
		val = "[" + val + "]"
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(val), &doc); err != nil {
		return &ConfigError{Source: "--set", Key: key, Err: fmt.Errorf("want %s: %v", kindName(field.Type()), err)}
	}
	if len(doc.Content) == 0 {
		return &ConfigError{Source: "--set", Key: key, Err: fmt.Errorf("empty value; want %s", kindName(field.Type()))}
	}
	if err := setNode(field, doc.Content[0]); err != nil {
		return &ConfigError{Source: "--set", Key: key, Err: err}
	}
	return nil
}

// LoadYAML applies a YAML document (a mapping of the same keys, nested
// under `model:` for the model's) to cfg; keys not in the file keep their
// values. name is used in errors.
func LoadYAML(cfg *Config, name string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &ConfigError{Source: name, Err: err}
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return applyMapping(cfg, name, "", doc.Content[0])
}

func applyMapping(cfg *Config, name, prefix string, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		key := strings.TrimSuffix(prefix, ".")
		return &ConfigError{Source: fmt.Sprintf("%s:%d", name, n.Line), Key: key, Err: errors.New("want a mapping of keys")}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := prefix + kn.Value
		src := fmt.Sprintf("%s:%d", name, kn.Line)
		if seen[key] {
			return &ConfigError{Source: src, Key: key, Err: errors.New("given twice")}
		}
		seen[key] = true
		if vn.Kind == yaml.MappingNode {
			if v, err := lookupSection(cfg, key); err == nil && v {
				if err := applyMapping(cfg, name, key+".", vn); err != nil {
					return err
				}
				continue
			}
		}
		field, err := lookup(cfg, key)
		if err != nil {
			return &ConfigError{Source: src, Key: key, Err: err}
		}
		if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
			return &ConfigError{Source: src, Key: key, Err: fmt.Errorf("no value; want %s", kindName(field.Type()))}
		}
		if err := setNode(field, vn); err != nil {
			return &ConfigError{Source: src, Key: key, Err: err}
		}
	}
	return nil
}

// lookupSection reports whether key names a section (a nested struct).
func lookupSection(cfg *Config, key string) (bool, error) {
	v := reflect.ValueOf(cfg)
	for _, part := range strings.Split(key, ".") {
		s, ok := structOf(v)
		if !ok {
			return false, nil
		}
		found := false
		for i := range s.NumField() {
			if yamlName(s.Type().Field(i)) == part {
				v, found = s.Field(i), true
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	_, ok := structOf(v)
	return ok, nil
}

// LoadConfigFile applies a YAML file to cfg.
func LoadConfigFile(cfg *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &ConfigError{Source: path, Err: err}
	}
	return LoadYAML(cfg, path, data)
}

// Keys lists every dotted key of cfg with its current value, sorted (for
// help texts).
func Keys(cfg *Config) []string {
	var out []string
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		s, _ := structOf(v)
		for i := range s.NumField() {
			n := yamlName(s.Type().Field(i))
			if n == "" {
				continue
			}
			f := s.Field(i)
			if _, ok := structOf(f); ok {
				walk(prefix+n+".", f)
				continue
			}
			out = append(out, fmt.Sprintf("%s%s=%v", prefix, n, f.Interface()))
		}
	}
	walk("", reflect.ValueOf(cfg))
	slices.Sort(out)
	return out
}

// YAML renders the config as a YAML document.
func (c *Config) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return b.Bytes(), nil
}

// Resolve fills the protocol-dependent defaults (protocol, select_metric)
// and validates every key. defaultProtocol is the model's.
func (c *Config) Resolve(defaultProtocol eval.Protocol) error {
	if c.Protocol == "" {
		c.Protocol = string(defaultProtocol)
	}
	p, err := eval.ParseProtocol(c.Protocol)
	if err != nil {
		return &ConfigError{Key: "protocol", Err: err}
	}
	if c.SelectMetric == "" {
		c.SelectMetric = p.SelectMetric()
	}
	return c.Validate()
}

// Validate checks every trainer key and the model's.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case c.Epochs < 0:
		return bad("epochs", "must be ≥ 0, got %d", c.Epochs)
	case c.Patience < 0:
		return bad("patience", "must be ≥ 0 (0 = no early stopping), got %d", c.Patience)
	case c.MinEpochs < 0:
		return bad("min_epochs", "must be ≥ 0, got %d", c.MinEpochs)
	case c.EvalEvery < 1:
		return bad("eval_every", "must be ≥ 1, got %d", c.EvalEvery)
	case c.CheckpointEvery < 1:
		return bad("checkpoint_every", "must be ≥ 1, got %d", c.CheckpointEvery)
	case len(c.Ks) == 0:
		return bad("ks", "needs at least one cut-off")
	case c.EvalBatch < 1:
		return bad("eval_batch", "must be ≥ 1, got %d", c.EvalBatch)
	case c.Threads < 0:
		return bad("threads", "must be ≥ 0 (0 = all cores), got %d", c.Threads)
	case c.RecommendK < 0:
		return bad("recommend_k", "must be ≥ 0, got %d", c.RecommendK)
	}
	for _, k := range c.Ks {
		if k < 1 {
			return bad("ks", "cut-offs must be ≥ 1, got %d", k)
		}
	}
	if _, err := eval.ParseProtocol(c.Protocol); err != nil {
		return bad("protocol", "%v", err)
	}
	if c.SelectMetric != "" {
		fam, k, err := eval.ParseMetric(c.SelectMetric)
		if err != nil {
			return bad("select_metric", "%v", err)
		}
		if !slices.Contains(c.Ks, k) {
			return bad("select_metric", "%s is not computed: add %d to ks", c.SelectMetric, k)
		}
		if fam == "ndcg_ngcf" && !c.NDCGNGCF {
			return bad("select_metric", "%s needs ndcg_ngcf: true", c.SelectMetric)
		}
	}
	if c.Model == nil {
		return bad("model", "no model configuration")
	}
	if err := c.Model.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.Key = "model." + ce.Key
			return ce
		}
		key, msg, ok := strings.Cut(err.Error(), ": ")
		if ok && !strings.Contains(key, " ") {
			return &ConfigError{Key: "model." + key, Err: errors.New(msg)}
		}
		return &ConfigError{Key: "model", Err: err}
	}
	return nil
}
