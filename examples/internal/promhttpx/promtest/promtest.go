// Package promtest scrapes a /metrics page over HTTP and parses it with Prometheus's own parser
// (expfmt), for the examples' smoke tests.
package promtest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url (a /metrics page) and parses the text exposition format. The scrape must be
// served as text/plain and pass promlint, client_golang's metric linter.
func Scrape(t testing.TB, client *http.Client, url string) Families {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, expfmt.TypeTextPlain, expfmt.ResponseFormat(resp.Header).FormatType(), resp.Header.Get("Content-Type"))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	fams := make([]*dto.MetricFamily, 0, len(mfs))
	for _, mf := range mfs {
		fams = append(fams, mf)
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	require.NoError(t, err)
	require.Empty(t, problems, "promlint")
	return mfs
}

// Value is the sum of the values of the counter or gauge series of name whose labels include
// the given name, value pairs; for a histogram, of their observation counts. A family absent from
// the scrape fails the test.
func (f Families) Value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mf, ok := f[name]
	require.True(t, ok, "no metric %s in the scrape", name)
	var sum float64
	for _, m := range f.series(mf, labels) {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// LabelValues returns the distinct values of label among the series of name.
func (f Families) LabelValues(name, label string) []string {
	var out []string
	seen := map[string]bool{}
	if mf, ok := f[name]; ok {
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == label && !seen[lp.GetValue()] {
					seen[lp.GetValue()] = true
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	return out
}

func (f Families) series(mf *dto.MetricFamily, labels []string) []*dto.Metric {
	var out []*dto.Metric
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			if value(m, labels[i]) != labels[i+1] {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

func value(m *dto.Metric, label string) string {
	for _, lp := range m.Label {
		if lp.GetName() == label {
			return lp.GetValue()
		}
	}
	return ""
}

// Dump lists the series of name, for a failure message.
func (f Families) Dump(name string) string {
	mf, ok := f[name]
	if !ok {
		return name + ": absent"
	}
	var b strings.Builder
	for _, m := range mf.Metric {
		b.WriteString(m.String())
		b.WriteByte('\n')
	}
	return b.String()
}
