// Package modelgen writes ONNX models from Go, for mmpipe's ONNX Runtime
// tests and benchmarks: a small ModelProto writer over protowire (no
// protoc, no ONNX proto package: research/deps.md §3.3 found none
// importable) and random-weight transformer encoders shaped like the real
// exports (a CLIP ViT image tower, a BERT text encoder, a CLIP text
// tower), with their weights exposed so a test can compute the same
// network by hand.
//
// The field numbers follow onnx.proto (IR version 8, opset 17).
package modelgen

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX TensorProto data types.
const (
	Float = 1
	Int32 = 6
	Int64 = 7
)

// IR version and default-domain opset the models declare.
const (
	IRVersion = 8
	Opset     = 17
)

// Attr is a node attribute (AttributeProto), already encoded.
type Attr []byte

// AttributeProto field numbers and types.
const (
	attrFloat  = 1
	attrInt    = 2
	attrString = 3
	attrFloats = 6
	attrInts   = 7
)

func attrHeader(name string, typ int) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(typ))
	return b
}

// AttrInt is an INT attribute.
func AttrInt(name string, v int64) Attr {
	b := attrHeader(name, attrInt)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// AttrFloat is a FLOAT attribute.
func AttrFloat(name string, v float32) Attr {
	b := attrHeader(name, attrFloat)
	b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, math.Float32bits(v))
}

// AttrInts is an INTS attribute.
func AttrInts(name string, vs ...int64) Attr {
	b := attrHeader(name, attrInts)
	var packed []byte
	for _, v := range vs {
		packed = protowire.AppendVarint(packed, uint64(v))
	}
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	return protowire.AppendBytes(b, packed)
}

// AttrString is a STRING attribute.
func AttrString(name, v string) Attr {
	b := attrHeader(name, attrString)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// Dim is a tensor dimension: an int (fixed size) or a string (a symbolic,
// dynamic axis such as "batch").
type Dim any

// Graph collects the parts of a GraphProto.
type Graph struct {
	Name    string
	nodes   [][]byte
	inits   [][]byte
	inputs  [][]byte
	outputs [][]byte
	counter int
	names   map[string]bool
}

// NewGraph starts an empty graph.
func NewGraph(name string) *Graph { return &Graph{Name: name, names: map[string]bool{}} }

// fresh returns a new unique value name.
func (g *Graph) fresh(hint string) string {
	for {
		g.counter++
		n := fmt.Sprintf("%s_%d", hint, g.counter)
		if !g.names[n] {
			g.names[n] = true
			return n
		}
	}
}

func valueInfo(name string, elem int, dims []Dim) []byte {
	var shape []byte
	for _, d := range dims {
		var dim []byte
		switch v := d.(type) {
		case int:
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(int64(v)))
		case int64:
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(v))
		case string:
			dim = protowire.AppendTag(dim, 2, protowire.BytesType)
			dim = protowire.AppendString(dim, v)
		default:
			panic(fmt.Sprintf("modelgen: dimension %v of %s is neither int nor string", d, name))
		}
		shape = protowire.AppendTag(shape, 1, protowire.BytesType)
		shape = protowire.AppendBytes(shape, dim)
	}
	var tensor []byte
	tensor = protowire.AppendTag(tensor, 1, protowire.VarintType)
	tensor = protowire.AppendVarint(tensor, uint64(elem))
	tensor = protowire.AppendTag(tensor, 2, protowire.BytesType)
	tensor = protowire.AppendBytes(tensor, shape)
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tensor)
	var vi []byte
	vi = protowire.AppendTag(vi, 1, protowire.BytesType)
	vi = protowire.AppendString(vi, name)
	vi = protowire.AppendTag(vi, 2, protowire.BytesType)
	return protowire.AppendBytes(vi, typ)
}

// Input declares a graph input and returns its name.
func (g *Graph) Input(name string, elem int, dims ...Dim) string {
	g.names[name] = true
	g.inputs = append(g.inputs, valueInfo(name, elem, dims))
	return name
}

// Output declares a graph output: value is renamed to name with an
// Identity node.
func (g *Graph) Output(name, value string, elem int, dims ...Dim) {
	g.names[name] = true
	g.NodeTo("Identity", []string{value}, []string{name})
	g.outputs = append(g.outputs, valueInfo(name, elem, dims))
}

func tensorProto(name string, dims []int64, elem int, raw []byte) []byte {
	var t []byte
	var packed []byte
	for _, d := range dims {
		packed = protowire.AppendVarint(packed, uint64(d))
	}
	t = protowire.AppendTag(t, 1, protowire.BytesType)
	t = protowire.AppendBytes(t, packed)
	t = protowire.AppendTag(t, 2, protowire.VarintType)
	t = protowire.AppendVarint(t, uint64(elem))
	t = protowire.AppendTag(t, 8, protowire.BytesType)
	t = protowire.AppendString(t, name)
	t = protowire.AppendTag(t, 9, protowire.BytesType)
	return protowire.AppendBytes(t, raw)
}

// Float32s adds a float32 initializer (row-major data) and returns its name.
func (g *Graph) Float32s(hint string, dims []int64, data []float32) string {
	if n := product(dims); n != len(data) {
		panic(fmt.Sprintf("modelgen: initializer %s: shape %v needs %d values, got %d", hint, dims, n, len(data)))
	}
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	name := g.fresh(hint)
	g.inits = append(g.inits, tensorProto(name, dims, Float, raw))
	return name
}

// Int64s adds an int64 initializer and returns its name.
func (g *Graph) Int64s(hint string, dims []int64, data ...int64) string {
	if n := product(dims); n != len(data) {
		panic(fmt.Sprintf("modelgen: initializer %s: shape %v needs %d values, got %d", hint, dims, n, len(data)))
	}
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	name := g.fresh(hint)
	g.inits = append(g.inits, tensorProto(name, dims, Int64, raw))
	return name
}

// Scalar adds a float32 scalar initializer.
func (g *Graph) Scalar(v float32) string { return g.Float32s("c", nil, []float32{v}) }

// Ints adds a 1-D int64 initializer.
func (g *Graph) Ints(vs ...int64) string { return g.Int64s("i", []int64{int64(len(vs))}, vs...) }

func product(dims []int64) int {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	return n
}

// NodeTo adds a node with the given output names.
func (g *Graph) NodeTo(op string, inputs, outputs []string, attrs ...Attr) {
	var n []byte
	for _, in := range inputs {
		n = protowire.AppendTag(n, 1, protowire.BytesType)
		n = protowire.AppendString(n, in)
	}
	for _, out := range outputs {
		n = protowire.AppendTag(n, 2, protowire.BytesType)
		n = protowire.AppendString(n, out)
	}
	n = protowire.AppendTag(n, 3, protowire.BytesType)
	n = protowire.AppendString(n, g.fresh("node_"+op))
	n = protowire.AppendTag(n, 4, protowire.BytesType)
	n = protowire.AppendString(n, op)
	for _, a := range attrs {
		n = protowire.AppendTag(n, 5, protowire.BytesType)
		n = protowire.AppendBytes(n, a)
	}
	g.nodes = append(g.nodes, n)
}

// Node adds a one-output node and returns the output's name.
func (g *Graph) Node(op string, inputs []string, attrs ...Attr) string {
	out := g.fresh(op)
	g.NodeTo(op, inputs, []string{out}, attrs...)
	return out
}

// Op is Node with the inputs as arguments.
func (g *Graph) Op(op string, inputs ...string) string { return g.Node(op, inputs) }

// Model serialises the graph as a ModelProto.
func (g *Graph) Model() []byte {
	var gb []byte
	for _, n := range g.nodes {
		gb = protowire.AppendTag(gb, 1, protowire.BytesType)
		gb = protowire.AppendBytes(gb, n)
	}
	gb = protowire.AppendTag(gb, 2, protowire.BytesType)
	gb = protowire.AppendString(gb, g.Name)
	for _, t := range g.inits {
		gb = protowire.AppendTag(gb, 5, protowire.BytesType)
		gb = protowire.AppendBytes(gb, t)
	}
	for _, v := range g.inputs {
		gb = protowire.AppendTag(gb, 11, protowire.BytesType)
		gb = protowire.AppendBytes(gb, v)
	}
	for _, v := range g.outputs {
		gb = protowire.AppendTag(gb, 12, protowire.BytesType)
		gb = protowire.AppendBytes(gb, v)
	}
	var opset []byte
	opset = protowire.AppendTag(opset, 1, protowire.BytesType)
	opset = protowire.AppendString(opset, "")
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, Opset)
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, IRVersion)
	m = protowire.AppendTag(m, 2, protowire.BytesType)
	m = protowire.AppendString(m, "mmpipe-modelgen")
	m = protowire.AppendTag(m, 7, protowire.BytesType)
	m = protowire.AppendBytes(m, gb)
	m = protowire.AppendTag(m, 8, protowire.BytesType)
	m = protowire.AppendBytes(m, opset)
	return m
}
