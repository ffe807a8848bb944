// An epoll read loop for the fan-out and request/ack modes: one goroutine per CPU reads every
// connection it owns with one read(2) per readiness event and parses the frames in place. This
// costs about half as much CPU per message as a goroutine-per-connection reader, which matters on
// a 2-core machine, where the load generator has a single core.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

type econn struct {
	idx    int
	fd     int
	ws     *wsConn
	buf    []byte // bytes of an incomplete frame
	closed bool
	err    error
	wire   int64 // bytes of the server's frames, headers included, as received
}

// frameHandler gets each complete frame; now is the receive time (after the read returned).
type frameHandler func(ec *econn, op byte, payload []byte, now int64)

func rawFd(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a syscall.Conn")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}

func newEconns(conns []*wsConn) ([]*econn, error) {
	out := make([]*econn, len(conns))
	for i, ws := range conns {
		fd, err := rawFd(ws.c)
		if err != nil {
			return nil, err
		}
		ec := &econn{idx: i, fd: fd, ws: ws}
		// Bytes the handshake reader already buffered belong to the frame stream.
		if n := ws.r.Buffered(); n > 0 {
			b, _ := ws.r.Peek(n)
			ec.buf = append(ec.buf, b...)
		}
		out[i] = ec
	}
	return out, nil
}

// parseFrames handles every complete server frame in b and returns how many bytes it used.
func parseFrames(ec *econn, b []byte, now int64, h frameHandler) (int, error) {
	used := 0
	for {
		rest := b[used:]
		if len(rest) < 2 {
			return used, nil
		}
		fin := rest[0]&0x80 != 0
		compressed := rest[0]&0x40 != 0
		op := rest[0] & 0x0f
		masked := rest[1]&0x80 != 0
		n := uint64(rest[1] & 0x7f)
		hl := 2
		switch n {
		case 126:
			if len(rest) < 4 {
				return used, nil
			}
			n = uint64(binary.BigEndian.Uint16(rest[2:4]))
			hl = 4
		case 127:
			if len(rest) < 10 {
				return used, nil
			}
			n = binary.BigEndian.Uint64(rest[2:10])
			hl = 10
		}
		if masked {
			hl += 4
		}
		if n > 64<<20 {
			return used, fmt.Errorf("frame too large: %d", n)
		}
		if uint64(len(rest)) < uint64(hl)+n {
			return used, nil
		}
		payload := rest[hl : uint64(hl)+n]
		if masked {
			mk := rest[hl-4 : hl]
			for i := range payload {
				payload[i] ^= mk[i&3]
			}
		}
		used += hl + int(n)
		ec.wire += int64(hl) + int64(n)
		if compressed && (op == opText || op == opBin) {
			inflated, err := ec.ws.inf.inflate(payload)
			if err != nil {
				return used, fmt.Errorf("inflate: %w", err)
			}
			payload = inflated
		}
		if !fin || op == opCont {
			return used, errors.New("fragmented messages are not expected from the server")
		}
		switch op {
		case opPing:
			if err := ec.ws.writeFrame(opPong, payload); err != nil {
				return used, err
			}
		case opClose:
			return used, errClosed
		case opPong:
		default:
			h(ec, op, payload, now)
		}
	}
}

// eloop reads conns until stop is set; handler runs on this goroutine only.
func eloop(conns []*econn, stop *atomic.Bool, h frameHandler) error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer syscall.Close(epfd)
	for i, ec := range conns {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(i)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, ec.fd, &ev); err != nil {
			return err
		}
	}
	fail := func(ec *econn, err error) {
		ec.closed = true
		ec.err = err
		_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, ec.fd, nil)
	}
	// Frames left over in the handshake reader.
	for _, ec := range conns {
		if len(ec.buf) > 0 {
			used, err := parseFrames(ec, ec.buf, time.Now().UnixNano(), h)
			ec.buf = append(ec.buf[:0], ec.buf[used:]...)
			if err != nil {
				fail(ec, err)
			}
		}
	}
	events := make([]syscall.EpollEvent, 512)
	rb := make([]byte, 256<<10)
	for !stop.Load() {
		n, err := syscall.EpollWait(epfd, events, 20)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return err
		}
		for _, ev := range events[:n] {
			ec := conns[ev.Fd]
			if ec.closed {
				continue
			}
			r, err := syscall.Read(ec.fd, rb)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if err != nil || r == 0 {
				if err == nil {
					err = errors.New("connection closed by the server")
				}
				fail(ec, err)
				continue
			}
			now := time.Now().UnixNano()
			data := rb[:r]
			if len(ec.buf) > 0 {
				ec.buf = append(ec.buf, data...)
				data = ec.buf
			}
			used, perr := parseFrames(ec, data, now, h)
			if len(ec.buf) > 0 {
				ec.buf = append(ec.buf[:0], ec.buf[used:]...)
			} else if used < len(data) {
				ec.buf = append(ec.buf[:0], data[used:]...)
			}
			if perr != nil {
				fail(ec, perr)
			}
		}
	}
	return nil
}

// partition deals conns to workers round-robin.
func partition(conns []*econn, workers int) [][]*econn {
	if workers < 1 {
		workers = 1
	}
	if workers > len(conns) {
		workers = len(conns)
	}
	parts := make([][]*econn, workers)
	for i, ec := range conns {
		parts[i%workers] = append(parts[i%workers], ec)
	}
	return parts
}
