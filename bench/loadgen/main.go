// wsload: the load generator of wsfleet's benchmarks (bench/run.py builds and drives it).
//
//	wsload fanout -addr 127.0.0.1:9000 -conns 1000 -broadcasts 200   (S1)
//	wsload reqack -addr 127.0.0.1:9000 -conns 100 -duration 10s      (S2)
//	wsload idle   -addr 127.0.0.1:9000 -steps 1000,5000              (S6)
//
// Every mode speaks the wsfleet client protocol, stops by itself (counts and deadlines) and prints
// its result as one JSON object per line on stdout; progress and errors go to stderr. With
// -server-pid, the server's CPU time (utime+stime from /proc/<pid>/stat) is sampled over the
// measurement window, together with this process's own CPU and the whole machine's busy share.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type common struct {
	addr      string
	addrs     []string // -addrs: connection n goes to addrs[n % len(addrs)]
	pids      []int    // -pids: more processes whose CPU is sampled (fleet nodes, redis-server)
	place     func(n int) (addr, id string)
	path      string
	serverPid int
	clkTck    float64
	dialConc  int
	timeout   time.Duration
	idPrefix  string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:9000", "server host:port")
	fs.StringVar(&c.path, "path", "/ws", "WebSocket path, may hold a query (the id= parameter is appended)")
	fs.IntVar(&c.serverPid, "server-pid", 0, "pid of the server process, to sample its CPU time")
	fs.Float64Var(&c.clkTck, "clk-tck", 100, "kernel clock ticks per second (os.sysconf SC_CLK_TCK)")
	fs.IntVar(&c.dialConc, "dial-concurrency", 64, "connections being opened at once")
	fs.DurationVar(&c.timeout, "timeout", 120*time.Second, "hard deadline of the whole run")
	fs.StringVar(&c.idPrefix, "id-prefix", "c", "socket ids are <prefix><n>")
	fs.BoolVar(&offerDeflate, "deflate", false, "offer permessage-deflate (the server may accept it)")
	fs.Func("addrs", "comma-separated host:port list: connection n goes to the (n mod len)th", func(v string) error {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.addrs = append(c.addrs, a)
			}
		}
		return nil
	})
	fs.Func("pids", "comma-separated pids whose CPU time is sampled too (reported under cpu.procs)", func(v string) error {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				n, err := strconv.Atoi(a)
				if err != nil {
					return err
				}
				c.pids = append(c.pids, n)
			}
		}
		samplePids = c.pids
		return nil
	})
}

// samplePids are sampled by every sample() call (set by -pids).
var samplePids []int

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "wsload: "+format+"\n", args...)
	os.Exit(2)
}

// emitResult prints a mode's result, with the first error seen (if any) as "first_error".
func emitResult(res map[string]any, firstErr string) {
	if firstErr != "" {
		res["first_error"] = firstErr
	}
	emit(res)
}

// runWindow runs a closed-loop measurement's clock: it sleeps through the warm-up and the window,
// samples the server's CPU at both ends, waits (at most 10 s) until every loop went idle, then
// stops the event loops and closes the connections.
func runWindow(c *common, start, end time.Time, allIdle <-chan struct{}, stop *atomic.Bool,
	exited *sync.WaitGroup, conns []*wsConn) (cpuSample, cpuSample) {
	time.Sleep(time.Until(start))
	a := sample(c.serverPid)
	time.Sleep(time.Until(end))
	b := sample(c.serverPid)
	select {
	case <-allIdle:
	case <-time.After(10 * time.Second):
	}
	stop.Store(true)
	exited.Wait()
	closeAll(conns)
	return a, b
}

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fatal("encode result: %v", err)
	}
	os.Stdout.Write(append(b, '\n'))
}

// ---- CPU sampling -------------------------------------------------------------------------

type cpuSample struct {
	at          time.Time
	serverTicks int64
	serverSys   int64
	selfCPU     time.Duration
	sysBusy     int64
	sysTotal    int64
	procs       map[int][2]int64 // pid -> (utime+stime, stime) ticks
}

// procTicks returns utime+stime and stime of pid, in clock ticks (-1 if unknown).
func procTicks(pid int) (int64, int64) {
	if pid <= 0 {
		return -1, -1
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1, -1
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return -1, -1
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return -1, -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st, st
}

func systemTicks() (busy, total int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	f := strings.Fields(string(line))
	for k, s := range f[1:] {
		v, _ := strconv.ParseInt(s, 10, 64)
		if k >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		total += v
		if k != 3 && k != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sample(pid int) cpuSample {
	b, t := systemTicks()
	all, sys := procTicks(pid)
	procs := make(map[int][2]int64, len(samplePids))
	for _, p := range samplePids {
		pa, ps := procTicks(p)
		procs[p] = [2]int64{pa, ps}
	}
	return cpuSample{at: time.Now(), serverTicks: all, serverSys: sys, selfCPU: selfCPU(), sysBusy: b, sysTotal: t, procs: procs}
}

func cpuReport(a, b cpuSample, clk float64) map[string]any {
	wall := b.at.Sub(a.at).Seconds()
	out := map[string]any{"window_s": wall}
	if a.serverTicks >= 0 && b.serverTicks >= 0 {
		secs := float64(b.serverTicks-a.serverTicks) / clk
		out["server_cpu_s"] = secs
		out["server_cpu_share"] = secs / wall
		out["server_sys_s"] = float64(b.serverSys-a.serverSys) / clk
	}
	out["loadgen_cpu_s"] = (b.selfCPU - a.selfCPU).Seconds()
	out["loadgen_cpu_share"] = (b.selfCPU - a.selfCPU).Seconds() / wall
	if b.sysTotal > a.sysTotal {
		out["machine_busy_share"] = float64(b.sysBusy-a.sysBusy) / float64(b.sysTotal-a.sysTotal)
	}
	if len(a.procs) > 0 {
		procs := map[string]any{}
		for pid, x := range a.procs {
			y, ok := b.procs[pid]
			if !ok || x[0] < 0 || y[0] < 0 {
				continue
			}
			secs := float64(y[0]-x[0]) / clk
			procs[strconv.Itoa(pid)] = map[string]any{
				"cpu_s": secs, "cpu_share": secs / wall, "sys_s": float64(y[1]-x[1]) / clk,
			}
		}
		out["procs"] = procs
	}
	return out
}

// ---- helpers ------------------------------------------------------------------------------

func percentiles(ns []int64) map[string]any {
	if len(ns) == 0 {
		return map[string]any{"n": 0}
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	q := func(p float64) float64 {
		k := int(p*float64(len(ns)) + 0.5)
		if k < 1 {
			k = 1
		}
		if k > len(ns) {
			k = len(ns)
		}
		return float64(ns[k-1]) / 1e6
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return map[string]any{
		"n": len(ns), "min_ms": float64(ns[0]) / 1e6, "p50_ms": q(0.50), "p90_ms": q(0.90),
		"p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": float64(ns[len(ns)-1]) / 1e6,
		"mean_ms": sum / float64(len(ns)) / 1e6,
	}
}

// intAfter parses the non-negative integer that follows needle in msg.
func intAfter(msg, needle []byte) (int64, bool) {
	i := bytes.Index(msg, needle)
	if i < 0 {
		return 0, false
	}
	var v int64
	j := i + len(needle)
	start := j
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		v = v*10 + int64(msg[j]-'0')
		j++
	}
	return v, j > start
}

var helloFrame = []byte(`{"event":"echo","payload":"hello","callbackId":"hello"}`)
var helloAck = []byte(`"callbackId":"hello"`)

// open dials one connection and waits for the ack of a first echo: after it, the server has
// registered the socket and runs its read loop.
func open(c *common, n int) (*wsConn, error) {
	addr, id := c.addr, fmt.Sprintf("%s%d", c.idPrefix, n)
	if c.place != nil {
		addr, id = c.place(n)
	} else if len(c.addrs) > 0 {
		addr = c.addrs[n%len(c.addrs)]
	}
	sep := "?"
	if strings.Contains(c.path, "?") {
		sep = "&"
	}
	conn, err := dial(addr, fmt.Sprintf("%s%sid=%s", c.path, sep, id), 15*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := conn.writeText(helloFrame); err != nil {
		conn.c.Close()
		return nil, err
	}
	for {
		msg, err := conn.readMessage()
		if err != nil {
			conn.c.Close()
			return nil, fmt.Errorf("waiting for the hello ack: %w", err)
		}
		if bytes.Contains(msg, helloAck) {
			break
		}
	}
	_ = conn.c.SetDeadline(time.Time{})
	return conn, nil
}

// openRange opens conns[from:to] with at most c.dialConc handshakes in flight.
func openRange(c *common, conns []*wsConn, from, to int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	workers := c.dialConc
	if workers > to-from {
		workers = to - from
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				conn, err := open(c, i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(to)) // stop the other workers
					return
				}
				conns[i] = conn
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func closeAll(conns []*wsConn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}

// ---- S1: fan-out --------------------------------------------------------------------------

type fanState struct {
	seen     int
	lat      []int64
	firstTs  int64
	lastRecv int64
	orderErr int
	extra    int
	err      error
}

func runFanout(args []string) {
	fs := flag.NewFlagSet("fanout", flag.ExitOnError)
	var c common
	c.register(fs)
	nConns := fs.Int("conns", 1000, "connected clients")
	nMsgs := fs.Int("broadcasts", 200, "measured broadcasts")
	warm := fs.Int("warmup", 20, "warm-up broadcasts before the measured ones")
	size := fs.Int("size", 100, "bytes of each broadcast's JSON text")
	_ = fs.Parse(args)
	deadline := time.Now().Add(c.timeout)

	conns := make([]*wsConn, *nConns)
	t0 := time.Now()
	if err := openRange(&c, conns, 0, *nConns); err != nil {
		closeAll(conns)
		fatal("%v", err)
	}
	connectS := time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "wsload: %d connections open in %.2fs\n", *nConns, connectS)

	tick := []byte(`"event":"tick"`)
	tsKey := []byte(`"ts":`)
	seqKey := []byte(`"seq":`)
	states := make([]fanState, *nConns)
	for i := range states {
		states[i].lat = make([]int64, 0, *nMsgs)
	}
	var warmed, finished atomic.Int64
	warmDone := make(chan struct{})
	allDone := make(chan struct{})
	handler := func(ec *econn, op byte, msg []byte, now int64) {
		if !bytes.Contains(msg, tick) {
			return
		}
		st := &states[ec.idx]
		ts, ok1 := intAfter(msg, tsKey)
		seq, ok2 := intAfter(msg, seqKey)
		if !ok1 || !ok2 {
			st.orderErr++
			return
		}
		n := st.seen
		st.seen++
		if n < *warm {
			if n == *warm-1 && warmed.Add(1) == int64(*nConns) {
				close(warmDone)
			}
			return
		}
		k := n - *warm
		if k >= *nMsgs {
			st.extra++
			return
		}
		if int64(k) != seq {
			st.orderErr++
		}
		if k == 0 {
			st.firstTs = ts
		}
		st.lat = append(st.lat, now-ts)
		if k == *nMsgs-1 {
			st.lastRecv = now
			if finished.Add(1) == int64(*nConns) {
				close(allDone)
			}
		}
	}
	econns, err := newEconns(conns)
	if err != nil {
		closeAll(conns)
		fatal("%v", err)
	}
	var stop atomic.Bool
	var exited sync.WaitGroup
	for _, part := range partition(econns, runtime.GOMAXPROCS(0)) {
		exited.Add(1)
		go func(part []*econn) {
			defer exited.Done()
			if err := eloop(part, &stop, handler); err != nil {
				fmt.Fprintf(os.Stderr, "wsload: event loop: %v\n", err)
			}
		}(part)
	}
	waitCh := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-time.After(time.Until(deadline)):
			return false
		}
	}
	trigger := func(count int) {
		frame := []byte(fmt.Sprintf(`{"event":"trigger","payload":{"count":%d,"size":%d}}`, count, *size))
		if err := conns[0].writeText(frame); err != nil {
			closeAll(conns)
			fatal("trigger: %v", err)
		}
	}
	warmOK := true
	if *warm > 0 {
		trigger(*warm)
		warmOK = waitCh(warmDone)
		time.Sleep(100 * time.Millisecond)
	}
	a := sample(c.serverPid)
	trigger(*nMsgs)
	complete := warmOK && waitCh(allDone)
	b := sample(c.serverPid)
	stop.Store(true)
	exited.Wait()
	closeAll(conns)
	var wire int64
	negotiated := 0
	for i, ec := range econns {
		states[i].err = ec.err
		wire += ec.wire
		if ec.ws.deflate {
			negotiated++
		}
	}

	var all []int64
	var firstTs, lastRecv int64
	orderErr, extra, incomplete := 0, 0, 0
	var firstErr string
	for i := range states {
		st := &states[i]
		all = append(all, st.lat...)
		if st.firstTs != 0 && (firstTs == 0 || st.firstTs < firstTs) {
			firstTs = st.firstTs
		}
		if st.lastRecv > lastRecv {
			lastRecv = st.lastRecv
		}
		orderErr += st.orderErr
		extra += st.extra
		if len(st.lat) < *nMsgs {
			incomplete++
			if st.err != nil && firstErr == "" {
				firstErr = st.err.Error()
			}
		}
	}
	delivered := len(all)
	if !complete {
		lastRecv = b.at.UnixNano()
	}
	span := float64(lastRecv-firstTs) / 1e9
	res := map[string]any{
		"mode": "fanout", "conns": *nConns, "broadcasts": *nMsgs, "warmup": *warm, "size": *size,
		"connect_s": connectS, "complete": complete, "delivered": delivered,
		"expected": *nConns * *nMsgs, "incomplete_conns": incomplete, "order_errors": orderErr,
		"extra_msgs": extra, "span_s": span, "msgs_per_s": float64(delivered) / span,
		"latency": percentiles(all), "cpu": cpuReport(a, b, c.clkTck),
		"wire_bytes": wire, "deflate_conns": negotiated,
	}
	emitResult(res, firstErr)
}

// ---- S2: request/ack ----------------------------------------------------------------------

func runReqAck(args []string) {
	fs := flag.NewFlagSet("reqack", flag.ExitOnError)
	var c common
	c.register(fs)
	nConns := fs.Int("conns", 100, "clients, each in a closed loop (one request in flight)")
	duration := fs.Duration("duration", 10*time.Second, "measurement window")
	warmup := fs.Duration("warmup", time.Second, "unmeasured run before the window")
	size := fs.Int("size", 100, "approximate bytes of each request's JSON text")
	_ = fs.Parse(args)

	conns := make([]*wsConn, *nConns)
	t0 := time.Now()
	if err := openRange(&c, conns, 0, *nConns); err != nil {
		closeAll(conns)
		fatal("%v", err)
	}
	connectS := time.Since(t0).Seconds()
	padLen := *size - len(`{"event":"echo","payload":{"seq":1234567,"pad":""},"callbackId":"99-1234567"}`)
	if padLen < 0 {
		padLen = 0
	}
	pad := strings.Repeat("x", padLen)

	start := time.Now().Add(*warmup)
	end := start.Add(*duration)
	startNs, endNs := start.UnixNano(), end.UnixNano()
	type state struct {
		seq    int
		sentAt int64
		want   []byte
		buf    []byte
		busy   bool
		acks   int
		total  int
		rtt    []int64
		err    error
	}
	states := make([]state, *nConns)
	var idle atomic.Int64 // connections that stopped sending after the window
	allIdle := make(chan struct{})
	send := func(i int, st *state, now int64) {
		if now >= endNs {
			st.busy = false
			if idle.Add(1) == int64(*nConns) {
				close(allIdle)
			}
			return
		}
		b := st.buf[:0]
		b = append(b, `{"event":"echo","payload":{"seq":`...)
		b = strconv.AppendInt(b, int64(st.seq), 10)
		b = append(b, `,"pad":"`...)
		b = append(b, pad...)
		b = append(b, `"},"callbackId":"`...)
		idStart := len(b)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(st.seq), 10)
		st.want = append(append(append(st.want[:0], `"callbackId":"`...), b[idStart:]...), '"')
		b = append(b, `"}`...)
		st.buf = b
		st.seq++
		st.busy = true
		st.sentAt = time.Now().UnixNano()
		if err := conns[i].writeText(b); err != nil {
			st.err = err
			st.busy = false
			if idle.Add(1) == int64(*nConns) {
				close(allIdle)
			}
		}
	}
	handler := func(ec *econn, op byte, msg []byte, now int64) {
		st := &states[ec.idx]
		if !st.busy || !bytes.Contains(msg, st.want) {
			return
		}
		st.total++
		if st.sentAt >= startNs && now < endNs {
			st.acks++
			st.rtt = append(st.rtt, now-st.sentAt)
		}
		send(ec.idx, st, now)
	}
	econns, err := newEconns(conns)
	if err != nil {
		closeAll(conns)
		fatal("%v", err)
	}
	for i := range states {
		states[i].rtt = make([]int64, 0, 8192)
		states[i].buf = make([]byte, 0, 256)
	}
	var stop atomic.Bool
	var exited sync.WaitGroup
	parts := partition(econns, runtime.GOMAXPROCS(0))
	for _, part := range parts {
		exited.Add(1)
		go func(part []*econn) {
			defer exited.Done()
			for _, ec := range part { // each worker starts its own connections' loops
				send(ec.idx, &states[ec.idx], time.Now().UnixNano())
			}
			if err := eloop(part, &stop, handler); err != nil {
				fmt.Fprintf(os.Stderr, "wsload: event loop: %v\n", err)
			}
		}(part)
	}
	a, b := runWindow(&c, start, end, allIdle, &stop, &exited, conns)
	type result struct {
		acks, total int
		rtt         []int64
		err         error
	}
	results := make([]result, *nConns)
	for i := range states {
		st := &states[i]
		err := st.err
		if err == nil {
			err = econns[i].err
		}
		if err == nil && st.busy {
			err = errors.New("no ack for the last request within 10s of the window's end")
		}
		results[i] = result{acks: st.acks, total: st.total, rtt: st.rtt, err: err}
	}

	var all []int64
	acks, total, failed := 0, 0, 0
	var firstErr string
	for _, r := range results {
		acks += r.acks
		total += r.total
		all = append(all, r.rtt...)
		if r.err != nil {
			failed++
			if firstErr == "" {
				firstErr = r.err.Error()
			}
		}
	}
	res := map[string]any{
		"mode": "reqack", "conns": *nConns, "duration_s": duration.Seconds(),
		"warmup_s": warmup.Seconds(), "size": *size, "connect_s": connectS, "acks": acks,
		"acks_total": total, "failed_conns": failed, "acks_per_s": float64(acks) / duration.Seconds(),
		"rtt": percentiles(all), "cpu": cpuReport(a, b, c.clkTck), "complete": failed == 0,
	}
	emitResult(res, firstErr)
}

// ---- S6: idle connections -----------------------------------------------------------------

func runIdle(args []string) {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	var c common
	c.register(fs)
	stepsArg := fs.String("steps", "1000,5000", "connection counts at which to pause (ascending)")
	_ = fs.Parse(args)
	var steps []int
	for _, s := range strings.Split(*stepsArg, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 || (len(steps) > 0 && n <= steps[len(steps)-1]) {
			fatal("bad -steps %q", *stepsArg)
		}
		steps = append(steps, n)
	}
	deadline := time.Now().Add(c.timeout)
	go func() {
		time.Sleep(time.Until(deadline))
		fatal("deadline of %s reached", c.timeout)
	}()
	total := steps[len(steps)-1]
	conns := make([]*wsConn, total)
	var dropped atomic.Int64
	stdin := bufio.NewReader(os.Stdin)
	from := 0
	for _, to := range steps {
		a := sample(c.serverPid)
		if err := openRange(&c, conns, from, to); err != nil {
			closeAll(conns)
			fatal("%v", err)
		}
		b := sample(c.serverPid)
		for _, conn := range conns[from:to] {
			go func(conn *wsConn) { // keep reading: answers the server's pings
				for {
					if _, err := conn.readMessage(); err != nil {
						dropped.Add(1) // read before closeAll: any end here is a drop
						return
					}
				}
			}(conn)
		}
		emit(map[string]any{"mode": "idle", "at": to, "connected_now": to, "dropped": dropped.Load(),
			"connect": cpuReport(a, b, c.clkTck)})
		from = to
		if _, err := stdin.ReadString('\n'); err != nil {
			break // the runner went away: stop
		}
	}
	d := dropped.Load()
	closeAll(conns)
	emit(map[string]any{"mode": "idle", "done": true, "conns": total, "dropped_while_idle": d})
}

func main() {
	if len(os.Args) < 2 {
		fatal("usage: wsload fanout|reqack|idle [flags]")
	}
	switch os.Args[1] {
	case "fanout":
		runFanout(os.Args[2:])
	case "reqack":
		runReqAck(os.Args[2:])
	case "idle":
		runIdle(os.Args[2:])
	case "dm":
		runDM(os.Args[2:])
	case "call":
		runCall(os.Args[2:])
	default:
		fatal("unknown mode %q (fanout, reqack, idle)", os.Args[1])
	}
}
