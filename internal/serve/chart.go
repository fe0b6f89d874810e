package serve

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// chartDays is how many days the records-per-day chart shows.
const chartDays = 30

// chart draws the records added on each of the last chartDays UTC days
// (through now's) as an inline SVG bar chart: no script, no external
// asset. Days the history does not know show as zero. Each bar carries a
// <title>, which browsers show on hover and screen readers read.
func chart(days []DayCount, now time.Time) template.HTML {
	counts := map[string]int64{}
	for _, d := range days {
		counts[d.Day] = d.Records
	}
	const w, h, gap = 10, 60, 2
	var peak, total int64
	series := make([]DayCount, chartDays)
	for i := range series {
		day := now.UTC().AddDate(0, 0, i-chartDays+1).Format(time.DateOnly)
		series[i] = DayCount{Day: day, Records: counts[day]}
		peak = max(peak, counts[day])
		total += counts[day]
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" preserveAspectRatio="none" role="img" aria-label="%d records in the last %d days, at most %d in one day">`,
		chartDays*(w+gap), h+1, total, chartDays, peak)
	for i, d := range series {
		bh := 0
		if peak > 0 {
			bh = int(d.Records * h / peak)
		}
		if d.Records > 0 && bh == 0 {
			bh = 1 // a day with records is never invisible
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d"><title>%s: %d records</title></rect>`,
			i*(w+gap), h-bh, w, bh+1, template.HTMLEscapeString(d.Day), d.Records)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
