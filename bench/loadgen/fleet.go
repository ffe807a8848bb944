// The fleet modes (S4 and S5): clients spread over several wsfleet nodes (-addrs).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ---- S4: cross-node direct messages -------------------------------------------------------

// runDM opens -pairs sender/receiver pairs: sender i ("s<i>") on addrs[i % n], receiver i
// ("r<i>") on addrs[(i+1) % n], so every pair spans two nodes. Each sender keeps one message in
// flight: it sends {"event":"dm","payload":{"to":"r<i>","ts":T,"seq":k,"pad":…}}, the node
// forwards it with server.to_socket_id, the receiver answers {"to":"s<i>",…} the same way, and the
// answer's arrival releases the sender's next message. Every leg is one delivered message; its
// latency is the receive time minus the ts its sender wrote (same machine clock).
func runDM(args []string) {
	fs := flag.NewFlagSet("dm", flag.ExitOnError)
	var c common
	c.register(fs)
	nPairs := fs.Int("pairs", 50, "sender/receiver pairs")
	duration := fs.Duration("duration", 10*time.Second, "measurement window")
	warmup := fs.Duration("warmup", time.Second, "unmeasured run before the window")
	size := fs.Int("size", 100, "approximate bytes of each message's JSON text")
	_ = fs.Parse(args)
	if len(c.addrs) < 2 {
		fatal("dm needs -addrs with two nodes or more")
	}
	P := *nPairs
	c.place = func(n int) (string, string) {
		if n < P {
			return c.addrs[n%len(c.addrs)], "s" + strconv.Itoa(n)
		}
		i := n - P
		return c.addrs[(i+1)%len(c.addrs)], "r" + strconv.Itoa(i)
	}
	conns := make([]*wsConn, 2*P)
	t0 := time.Now()
	if err := openRange(&c, conns, 0, 2*P); err != nil {
		closeAll(conns)
		fatal("%v", err)
	}
	connectS := time.Since(t0).Seconds()
	padLen := *size - len(`{"event":"dm","payload":{"to":"r99","ts":1700000000000000000,"seq":1234567,"pad":""}}`)
	if padLen < 0 {
		padLen = 0
	}
	pad := strings.Repeat("x", padLen)
	start := time.Now().Add(*warmup)
	end := start.Add(*duration)
	startNs, endNs := start.UnixNano(), end.UnixNano()
	type state struct {
		seq      int64
		sentAt   int64
		busy     bool
		buf      []byte
		lat      []int64 // one-way latencies of messages received in the window
		rtt      []int64 // senders: round trips that started in the window
		received int
		errs     int
		err      error
	}
	states := make([]state, 2*P)
	var idle atomic.Int64
	allIdle := make(chan struct{})
	build := func(st *state, to string, seq int64, now int64) []byte {
		b := st.buf[:0]
		b = append(b, `{"event":"dm","payload":{"to":"`...)
		b = append(b, to...)
		b = append(b, `","ts":`...)
		b = strconv.AppendInt(b, now, 10)
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, seq, 10)
		b = append(b, `,"pad":"`...)
		b = append(b, pad...)
		b = append(b, `"}}`...)
		st.buf = b
		return b
	}
	finish := func(st *state) {
		st.busy = false
		if idle.Add(1) == int64(P) {
			close(allIdle)
		}
	}
	send := func(i int, st *state) {
		now := time.Now().UnixNano()
		if now >= endNs {
			finish(st)
			return
		}
		st.seq++
		st.busy = true
		st.sentAt = now
		if err := conns[i].writeText(build(st, "r"+strconv.Itoa(i), st.seq, now)); err != nil {
			st.err = err
			finish(st)
		}
	}
	tsKey, seqKey, dmKey := []byte(`"ts":`), []byte(`"seq":`), []byte(`"event":"dm"`)
	handler := func(ec *econn, op byte, msg []byte, now int64) {
		if !bytes.Contains(msg, dmKey) {
			return
		}
		st := &states[ec.idx]
		ts, ok1 := intAfter(msg, tsKey)
		seq, ok2 := intAfter(msg, seqKey)
		if !ok1 || !ok2 {
			st.errs++
			return
		}
		st.received++
		if now >= startNs && now < endNs {
			st.lat = append(st.lat, now-ts)
		}
		if ec.idx >= P { // a receiver: answer its sender
			i := ec.idx - P
			if err := conns[ec.idx].writeText(build(st, "s"+strconv.Itoa(i), seq, time.Now().UnixNano())); err != nil && st.err == nil {
				st.err = err
			}
			return
		}
		if !st.busy || seq != st.seq {
			st.errs++
			return
		}
		if st.sentAt >= startNs && now < endNs {
			st.rtt = append(st.rtt, now-st.sentAt)
		}
		send(ec.idx, st)
	}
	econns, err := newEconns(conns)
	if err != nil {
		closeAll(conns)
		fatal("%v", err)
	}
	for i := range states {
		states[i].lat = make([]int64, 0, 4096)
		states[i].buf = make([]byte, 0, 256)
	}
	var stop atomic.Bool
	var exited sync.WaitGroup
	for _, part := range partition(econns, runtime.GOMAXPROCS(0)) {
		exited.Add(1)
		go func(part []*econn) {
			defer exited.Done()
			for _, ec := range part {
				if ec.idx < P {
					send(ec.idx, &states[ec.idx])
				}
			}
			if err := eloop(part, &stop, handler); err != nil {
				fmt.Fprintf(os.Stderr, "wsload: event loop: %v\n", err)
			}
		}(part)
	}
	a, b := runWindow(&c, start, end, allIdle, &stop, &exited, conns)
	var lat, rtt []int64
	failed, errs, received := 0, 0, 0
	var firstErr string
	for i := range states {
		st := &states[i]
		lat = append(lat, st.lat...)
		rtt = append(rtt, st.rtt...)
		errs += st.errs
		received += st.received
		e := st.err
		if e == nil {
			e = econns[i].err
		}
		if e == nil && i < P && st.busy {
			e = fmt.Errorf("sender %d: no answer within 10s of the window's end", i)
		}
		if e != nil {
			failed++
			if firstErr == "" {
				firstErr = e.Error()
			}
		}
	}
	res := map[string]any{
		"mode": "dm", "pairs": P, "nodes": len(c.addrs), "duration_s": duration.Seconds(),
		"warmup_s": warmup.Seconds(), "size": *size, "connect_s": connectS,
		"delivered": len(lat), "received_total": received,
		"msgs_per_s":  float64(len(lat)) / duration.Seconds(),
		"round_trips": len(rtt), "latency": percentiles(lat), "rtt": percentiles(rtt),
		"protocol_errors": errs, "failed_conns": failed, "complete": failed == 0 && errs == 0,
		"cpu": cpuReport(a, b, c.clkTck),
	}
	emitResult(res, firstErr)
}

// ---- S5: one event with an ack, timed (drives work inside a node) ------------------------

// runCall sends {"event":E,"payload":P,"callbackId":"call"} on one connection and waits for its
// ack; the CPU window is from just before the send to the ack.
func runCall(args []string) {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	var c common
	c.register(fs)
	event := fs.String("event", "rpc", "event name")
	payload := fs.String("payload", "null", "payload (JSON)")
	_ = fs.Parse(args)
	var p json.RawMessage
	if err := json.Unmarshal([]byte(*payload), &p); err != nil {
		fatal("bad -payload: %v", err)
	}
	conn, err := open(&c, 0)
	if err != nil {
		fatal("%v", err)
	}
	defer conn.close()
	frame, _ := json.Marshal(map[string]any{"event": *event, "payload": p, "callbackId": "call"})
	_ = conn.c.SetDeadline(time.Now().Add(c.timeout))
	a := sample(c.serverPid)
	if err := conn.writeText(frame); err != nil {
		fatal("send: %v", err)
	}
	want := []byte(`"callbackId":"call"`)
	for {
		msg, err := conn.readMessage()
		if err != nil {
			fatal("waiting for the ack: %v", err)
		}
		if !bytes.Contains(msg, want) {
			continue
		}
		b := sample(c.serverPid)
		var ack map[string]any
		if err := json.Unmarshal(msg, &ack); err != nil {
			fatal("bad ack: %v", err)
		}
		emit(map[string]any{"mode": "call", "ack": ack["payload"], "cpu": cpuReport(a, b, c.clkTck)})
		return
	}
}
