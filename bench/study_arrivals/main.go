// Command study_arrivals writes the FGD study's arrival order and node tie-break ranks for one pod list and
// seed, in the layout `gpu-autoscaler simulate --replay` reads (`<stem>_seed<S>_arrivals.csv.gz`,
// `<stem>_seed<S>_node_tiebreak.csv.gz`).
//
// It draws from Go's global math/rand in the order the study's simulator does
// (shared/reference/fgd-trace-replay.md §3): Seed, one Int, Shuffle of the name-sorted pods, tune up
// (copies drawn from the name-sorted list, stop when the next one's per-GPU milli would pass the target) or
// tune down (random pods removed while the total is above the target), the informers' Float64 draws, then
// Perm over the name-sorted nodes. Written from that description; it reproduces every published replay file
// shipped with the trace. Go <= 1.23 seeds the global source with rand.Seed; later Go needs
// GODEBUG=randseednop=0. Used by bench/study_data.py; the Python project does not need Go otherwise.
package main

import (
	"compress/gzip"
	"encoding/csv"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
)

type pod struct {
	name   string
	orig   int
	clone  int
	perGpu int64
	total  int64
}

func readCSV(path string) ([]map[string]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	r := csv.NewReader(fh)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	out := []map[string]string{}
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			if i < len(rec) {
				m[h] = rec[i]
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func atoi(s string) int64 {
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return int64(f)
}

func writeGz(path string, header []string, rows [][]string) {
	fh, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	defer fh.Close()
	gz := gzip.NewWriter(fh)
	w := csv.NewWriter(gz)
	_ = w.Write(header)
	_ = w.WriteAll(rows)
	w.Flush()
	gz.Close()
}

func main() {
	nodesPath := flag.String("nodes", "", "node CSV")
	podsPath := flag.String("pods", "", "pod CSV")
	seed := flag.Int64("seed", 42, "tune seed")
	ratio := flag.Float64("tune", 1.3, "tune ratio")
	reflectors := flag.Int("reflector-draws", 10, "Float64 draws by informers before the node permutation")
	out := flag.String("out", ".", "output folder")
	stem := flag.String("stem", "", "file stem (default: pods file name)")
	flag.Parse()

	prow, err := readCSV(*podsPath)
	if err != nil {
		panic(err)
	}
	pods := make([]pod, len(prow))
	for i, r := range prow {
		num, milli := atoi(r["num_gpu"]), atoi(r["gpu_milli"])
		if milli > 1000 {
			milli = 1000
		}
		if num == 0 {
			milli = 0
		}
		pods[i] = pod{name: r["name"], clone: -1, perGpu: milli, total: milli * num}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].name < pods[j].name })
	for i := range pods {
		pods[i].orig = i
	}
	workload := append([]pod(nil), pods...)
	nrow, err := readCSV(*nodesPath)
	if err != nil {
		panic(err)
	}
	var nodeMilli int64
	names := []string{}
	for _, r := range nrow {
		nodeMilli += 1000 * atoi(r["gpu"])
		names = append(names, r["sn"])
	}

	rand.Seed(*seed)
	_ = rand.Int()
	rand.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
	var total int64
	for _, p := range pods {
		total += p.total
	}
	target := *ratio * float64(nodeMilli)
	if float64(total) > target {
		for float64(total) > *ratio*float64(nodeMilli) {
			idx := rand.Intn(len(pods))
			total -= pods[idx].total
			pods = append(pods[:idx], pods[idx+1:]...)
		}
	} else if float64(total) < target {
		n := len(workload)
		for i := 0; ; i++ {
			p := workload[rand.Intn(n)]
			if float64(total+p.perGpu) > *ratio*float64(nodeMilli) {
				break
			}
			p.clone = i
			total += p.total
			pods = append(pods, p)
		}
	}
	for i := 0; i < *reflectors; i++ {
		_ = rand.Float64()
	}
	sort.Strings(names)
	perm := rand.Perm(len(names))

	if *stem == "" {
		base := *podsPath
		for i := len(base) - 1; i >= 0; i-- {
			if base[i] == '/' {
				base = base[i+1:]
				break
			}
		}
		*stem = base[:len(base)-4]
	}
	prefix := fmt.Sprintf("%s/%s_seed%d", *out, *stem, *seed)
	rows := make([][]string, len(pods))
	for i, p := range pods {
		rows[i] = []string{strconv.Itoa(i), strconv.Itoa(p.orig), strconv.Itoa(p.clone)}
	}
	writeGz(prefix+"_arrivals.csv.gz", []string{"pos", "orig_index", "clone_no"}, rows)
	trows := make([][]string, len(names))
	for i, n := range names {
		trows[i] = []string{n, strconv.Itoa(perm[i])}
	}
	writeGz(prefix+"_node_tiebreak.csv.gz", []string{"node_name", "tiebreak_rank"}, trows)
}
