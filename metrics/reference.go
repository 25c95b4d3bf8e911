package metrics

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Doc describes one of terminator's metrics, read from its collector.
type Doc struct {
	Name, Type, Help string
	Labels           []string
}

// descFields reads a Desc's string form (client_golang has no accessors).
var descFields = regexp.MustCompile(`fqName: "([^"]*)", help: "((?:[^"\\]|\\.)*)",(?: unit: "[^"]*",)? constLabels: \{[^}]*\}, variableLabels: \{([^}]*)\}`)

// Reference lists every metric terminator defines (not Go's and the
// process's standard ones), sorted by name: the README's table is made
// from it, so that it cannot drift from the code.
func Reference() []Doc {
	m := New()
	v := reflect.ValueOf(m).Elem()
	var out []Doc
	for i := range v.NumField() {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok || v.Type().Field(i).Name == "Registry" {
			continue
		}
		typ := "gauge"
		switch c.(type) {
		case *prometheus.CounterVec, prometheus.Counter:
			typ = "counter"
		case *prometheus.HistogramVec, prometheus.Histogram:
			typ = "histogram"
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			f := descFields.FindStringSubmatch(d.String())
			if f == nil {
				panic(fmt.Sprintf("metrics: cannot read %s", d))
			}
			var labels []string
			if f[3] != "" {
				labels = strings.Split(f[3], ",")
			}
			out = append(out, Doc{Name: f[1], Type: typ, Help: strings.ReplaceAll(f[2], `\"`, `"`), Labels: labels})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ReferenceTable is Reference as a Markdown table.
func ReferenceTable() string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, d := range Reference() {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", d.Name, d.Type, strings.Join(d.Labels, ", "), strings.ReplaceAll(d.Help, "|", `\|`))
	}
	return b.String()
}
