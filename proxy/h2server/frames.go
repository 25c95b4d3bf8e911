package h2server

import (
	"time"

	"golang.org/x/net/http2"
)

// maxContinuations bounds the CONTINUATION frames of one header block: a
// 64 KiB header list needs four full frames; a flood of tiny ones is cut.
const maxContinuations = 32

// process handles one frame in the read loop. A returned StreamError
// resets that stream; any other error ends the connection.
func (c *Conn) process(f http2.Frame) error {
	if c.queueFull() {
		return errControlFlood
	}
	switch f := f.(type) {
	case *http2.HeadersFrame:
		return c.processHeaders(f)
	case *http2.ContinuationFrame:
		return c.processContinuation(f)
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := c.budget.spend(1); err != nil {
			return err
		}
		return c.processSettings(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		if err := c.budget.spend(1); err != nil {
			return err
		}
		c.queue(ctrlFrame{kind: ctrlPingAck, data: f.Data})
		c.kick()
		return nil
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.processReset(f)
	case *http2.PriorityFrame:
		if f.StreamID == f.StreamDep {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return c.budget.spend(0.1) // deprecated (RFC 9113 §5.3.2): ignored
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goingAway = true // the client opens no more streams
		done := len(c.streams) == 0
		c.mu.Unlock()
		if done {
			c.closeRead()
		}
		return nil
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "PUSH_PROMISE from a client"}
	default:
		return nil // unknown frame types are ignored (RFC 9113 §4.1)
	}
}

// processSettings applies the client's settings and acknowledges them.
func (c *Conn) processSettings(f *http2.SettingsFrame) error {
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	c.mu.Lock()
	err := f.ForeachSetting(c.applySettingLocked)
	if err == nil {
		c.queueLocked(ctrlFrame{kind: ctrlSettingsAck})
	}
	c.mu.Unlock()
	c.kick()
	return err
}

func (c *Conn) applySettingLocked(s http2.Setting) error {
	switch s.ID {
	case http2.SettingInitialWindowSize:
		delta := int64(s.Val) - c.initWindow
		c.initWindow = int64(s.Val)
		for _, st := range c.streams {
			st.sendWindow += delta
			if st.sendWindow > 1<<31-1 {
				return connError{http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window"}
			}
		}
		c.sendCond.Broadcast()
	case http2.SettingMaxFrameSize:
		c.maxFrame = int(s.Val)
	case http2.SettingHeaderTableSize:
		c.tableSize.Store(s.Val)
	}
	return nil
}

// processWindowUpdate gives terminator more to send.
func (c *Conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendWindow += inc
		if c.sendWindow > 1<<31-1 {
			return connError{http2.ErrCodeFlowControl, "connection window over 2^31-1"}
		}
		c.sendCond.Broadcast()
		return nil
	}
	if f.StreamID > c.maxClientID {
		return connError{http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream"}
	}
	s := c.streams[f.StreamID]
	if s == nil {
		return nil // closed: allowed for a while (RFC 9113 §6.9)
	}
	s.sendWindow += inc
	if s.sendWindow > 1<<31-1 {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	c.sendCond.Broadcast()
	return nil
}

// processReset ends a stream the client gave up on, and watches for
// clients that open streams only to reset them (CVE-2023-44487).
func (c *Conn) processReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID > c.maxClientID {
		return connError{http2.ErrCodeProtocol, "RST_STREAM on an idle stream"}
	}
	s := c.streams[f.StreamID]
	if s == nil {
		return nil
	}
	c.removeLocked(s, errClientGone)
	if !s.handlerDone {
		c.resets++
		if c.resets >= 100 && 2*c.resets >= c.opened {
			return connError{http2.ErrCodeEnhanceYourCalm, "client resets most streams it opens"}
		}
	}
	return nil
}

// streamError resets stream id.
func (c *Conn) streamError(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		c.removeLocked(s, errClientGone)
	}
	c.queueLocked(ctrlFrame{kind: ctrlReset, id: id, val: uint32(code)})
	c.mu.Unlock()
	c.kick()
}

// floodBudget limits frames that cost terminator work but carry no
// request: a burst of 200, refilled at 20 per second and by every request.
type floodBudget struct {
	tokens float64
	last   time.Time
}

const (
	floodBurst  = 200
	floodRefill = 20 // per second
)

func (b *floodBudget) init() { b.tokens, b.last = floodBurst, time.Now() }

func (b *floodBudget) spend(n float64) error {
	now := time.Now()
	b.tokens = min(floodBurst, b.tokens+now.Sub(b.last).Seconds()*floodRefill) - n
	b.last = now
	if b.tokens < 0 {
		return connError{http2.ErrCodeEnhanceYourCalm, "too many PING, SETTINGS, PRIORITY or empty DATA frames"}
	}
	return nil
}

// credit refills the budget when a request arrives.
func (b *floodBudget) credit() { b.tokens = min(floodBurst, b.tokens+1) }
