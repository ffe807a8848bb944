// A minimal RFC 6455 client: just what the benchmark needs (text frames, masking, ping/pong,
// close), standard library only, so the load generator builds offline.
package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

const (
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

var errClosed = errors.New("websocket closed by peer")

type wsConn struct {
	c       net.Conn
	r       *bufio.Reader
	wmu     sync.Mutex
	wbuf    []byte
	rbuf    []byte
	msg     []byte
	seed    uint64
	deflate bool // permessage-deflate was negotiated
	inf     inflater
}

// offerDeflate (-deflate) makes dial offer permessage-deflate.
var offerDeflate bool

// inflateTail ends a permessage-deflate message: the sync-flush marker the sender removed, then
// an empty final stored block so that the reader ends cleanly.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// inflater decompresses messages. The wsfleet server compresses every message on its own (no
// context takeover), so the reader is reset for each one; it is reused to keep the load
// generator's own cost per message low.
type inflater struct {
	fr  io.ReadCloser
	in  []byte // a copy: p may be followed by the next frame in the same buffer
	src bytes.Reader
	out bytes.Buffer
}

func (f *inflater) inflate(p []byte) ([]byte, error) {
	f.in = append(append(f.in[:0], p...), inflateTail...)
	f.src.Reset(f.in)
	if f.fr == nil {
		f.fr = flate.NewReader(&f.src)
	} else if err := f.fr.(flate.Resetter).Reset(&f.src, nil); err != nil {
		return nil, err
	}
	f.out.Reset()
	if _, err := f.out.ReadFrom(f.fr); err != nil {
		return nil, err
	}
	return f.out.Bytes(), nil
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// dial opens a TCP connection to addr and performs the opening handshake for path.
func dial(addr, path string, timeout time.Duration) (*wsConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		c.Close()
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(raw[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n"
	if offerDeflate {
		req += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	}
	req += "\r\n"
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	tp := textproto.NewReader(br)
	status, err := tp.ReadLine()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		c.Close()
		return nil, fmt.Errorf("handshake refused: %q", status)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake headers: %w", err)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if hdr.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, errors.New("handshake: bad Sec-WebSocket-Accept")
	}
	_ = c.SetDeadline(time.Time{})
	var s [8]byte
	_, _ = rand.Read(s[:])
	deflate := strings.HasPrefix(hdr.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	return &wsConn{c: c, r: br, seed: binary.LittleEndian.Uint64(s[:]) | 1, deflate: deflate}, nil
}

func (w *wsConn) nextMask() uint32 {
	// xorshift64*: unpredictable enough for a benchmark's masking keys.
	x := w.seed
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	w.seed = x
	return uint32((x * 2685821657736338717) >> 32)
}

// writeFrame sends one masked frame; safe for concurrent use.
func (w *wsConn) writeFrame(op byte, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	n := len(payload)
	b := w.wbuf[:0]
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 65536:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mk [4]byte
	binary.BigEndian.PutUint32(mk[:], w.nextMask())
	b = append(b, mk[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := start; i < len(b); i++ {
		b[i] ^= mk[(i-start)&3]
	}
	w.wbuf = b
	_, err := w.c.Write(b)
	return err
}

func (w *wsConn) writeText(payload []byte) error { return w.writeFrame(opText, payload) }

func (w *wsConn) readFull(n int) ([]byte, error) {
	if cap(w.rbuf) < n {
		w.rbuf = make([]byte, n)
	}
	buf := w.rbuf[:n]
	_, err := io.ReadFull(w.r, buf)
	return buf, err
}

// readMessage returns the next text or binary message (valid until the next call). Pings are
// answered, pongs skipped, a close frame ends the connection with errClosed.
func (w *wsConn) readMessage() ([]byte, error) {
	w.msg = w.msg[:0]
	fragmented := false
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.r, h[:]); err != nil {
			return nil, err
		}
		fin := h[0]&0x80 != 0
		compressed := h[0]&0x40 != 0
		op := h[0] & 0x0f
		masked := h[1]&0x80 != 0
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(w.r, e[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(w.r, e[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("frame too large: %d", n)
		}
		var mk [4]byte
		if masked {
			if _, err := io.ReadFull(w.r, mk[:]); err != nil {
				return nil, err
			}
		}
		payload, err := w.readFull(int(n))
		if err != nil {
			return nil, err
		}
		if masked {
			for i := range payload {
				payload[i] ^= mk[i&3]
			}
		}
		if compressed && fin && (op == opText || op == opBin) {
			if payload, err = w.inf.inflate(payload); err != nil {
				return nil, fmt.Errorf("inflate: %w", err)
			}
		}
		switch op {
		case opPing:
			if err := w.writeFrame(opPong, payload); err != nil {
				return nil, err
			}
			continue
		case opPong:
			continue
		case opClose:
			_ = w.writeFrame(opClose, payload)
			return nil, errClosed
		case opText, opBin:
			if fin && !fragmented {
				return payload, nil
			}
			fragmented = true
			w.msg = append(w.msg, payload...)
		case opCont:
			w.msg = append(w.msg, payload...)
		default:
			return nil, fmt.Errorf("unexpected opcode %d", op)
		}
		if fin && fragmented {
			return w.msg, nil
		}
	}
}

func (w *wsConn) close() {
	_ = w.writeFrame(opClose, []byte{0x03, 0xe8})
	_ = w.c.Close()
}
