package h2server

import "net/http"

// streamJob is a stream for a worker to serve (r nil: refuse it 431).
type streamJob struct {
	s *stream
	r *http.Request
}

// maxIdleWorkers bounds the worker goroutines a connection keeps parked
// between requests (none once it has no open stream): a reused worker
// keeps the stack it grew, where a new goroutine per request grows a
// fresh one each time (copystack was 6% of a gRPC profile).
const maxIdleWorkers = 4

// worker serves jobs until it is not needed any more. It exits when the
// connection ends, so Serve's wait covers it.
func (c *Conn) worker(job streamJob) {
	for {
		if job.r == nil {
			c.refuseTooLarge(job.s)
		} else {
			c.runStream(job.s, job.r)
		}
		c.mu.Lock()
		limit := maxIdleWorkers
		if len(c.streams) == 0 {
			limit = 0 // an idle connection holds no worker's stack
		}
		if c.closed || c.idleWorkers >= limit {
			c.mu.Unlock()
			return
		}
		c.idleWorkers++
		c.mu.Unlock()
		select {
		case job = <-c.work:
			if job.s == nil {
				return // trimmed: the connection went idle
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// trimWorkersLocked lets the parked workers go once the connection has no
// open stream. A worker not yet parked is left (it sees no open stream
// and exits on its own).
func (c *Conn) trimWorkersLocked() {
	for c.idleWorkers > 0 {
		select {
		case c.work <- streamJob{}:
			c.idleWorkers--
		default:
			return
		}
	}
}
