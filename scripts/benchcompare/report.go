package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// A report is the table bench-compare prints.
type report struct {
	rows                  []*row
	loadBefore, loadAfter string
}

// A row is one comparison: a value per round for sumd and the reference
// (none if refName is ""), and the medians of the details.
type row struct {
	name, refName    string
	unit             string
	sumd, ref, ratio []float64
	p99, refP99      []time.Duration
	cpuS, cpuRef     []time.Duration
}

func (r *report) row(name, refName string) *row {
	rw := &row{name: name, refName: refName}
	r.rows = append(r.rows, rw)
	return rw
}

func (rw *row) add(sumd, ref float64, unit string) {
	rw.unit = unit
	rw.sumd = append(rw.sumd, sumd)
	if rw.refName != "" {
		rw.ref = append(rw.ref, ref)
		rw.ratio = append(rw.ratio, sumd/ref)
	}
}

func (rw *row) detail(s, ref wrkResult) {
	rw.p99, rw.refP99 = append(rw.p99, s.p99), append(rw.refP99, ref.p99)
	rw.cpu(s.cpuPerReq(), ref.cpuPerReq())
}

func (rw *row) cpu(s, ref time.Duration) {
	rw.cpuS = append(rw.cpuS, s)
	if rw.refName != "" {
		rw.cpuRef = append(rw.cpuRef, ref)
	}
}

func (r *report) print(w io.Writer, c config, d time.Duration) {
	fmt.Fprintf(w, "\nmake bench-compare: %d alternating rounds of %s each, %d-record logs; load average (1, 5, 15 min) %s before, %s after; %s in all\n\n",
		c.rounds, c.duration, c.records, r.loadBefore, r.loadAfter, d.Round(time.Second))
	fmt.Fprintln(w, "| work | sumd (min / median / max) | reference | reference (min / median / max) | sumd ÷ reference (min / median / max) |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, rw := range r.rows {
		sumd := spread(rw.sumd, rw.unit) + details(rw.p99, rw.cpuS)
		if rw.refName == "" {
			fmt.Fprintf(w, "| %s | %s | | | |\n", rw.name, sumd)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", rw.name, sumd, rw.refName,
			spread(rw.ref, rw.unit)+details(rw.refP99, rw.cpuRef), ratios(rw.ratio))
	}
}

// spread formats min / median / max.
func spread(v []float64, unit string) string {
	if len(v) == 0 {
		return ""
	}
	lo, mid, hi := stats(v)
	return fmt.Sprintf("%s / %s / %s %s", human(lo), human(mid), human(hi), unit)
}

func ratios(v []float64) string {
	lo, mid, hi := stats(v)
	return fmt.Sprintf("%.2f / %.2f / %.2f×", lo, mid, hi)
}

// details formats the medians of the p99 latency and the CPU time per
// request or record, where measured.
func details(p99, cpu []time.Duration) string {
	s := ""
	if len(p99) > 0 {
		_, mid, _ := stats(p99)
		s += fmt.Sprintf("; p99 %s", mid.Round(10*time.Microsecond))
	}
	if len(cpu) > 0 {
		_, mid, _ := stats(cpu)
		s += fmt.Sprintf("; %.1f µs CPU each", float64(mid.Nanoseconds())/1e3)
	}
	return s
}

func stats[T int64 | float64 | time.Duration](v []T) (lo, mid, hi T) {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

// human writes 43,125.4 as "43.1k".
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
