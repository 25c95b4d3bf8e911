package dataplane

import (
	"context"
	"sync"
	"time"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
)

// Run keeps the plane current until ctx is done. A value on reload (SIGHUP)
// loads the configuration again with load and applies it; a change reported
// by a watcher re-applies the current configuration, fetching certificates
// anew. Failures are logged and exported; the serving snapshot stays. Run
// also rotates the Plane's own session-ticket keys daily. It expects a
// first successful Apply to have happened.
func (p *Plane) Run(ctx context.Context, load func() (*config.Config, error), reload <-chan struct{}, watchers []certs.Watcher) {
	p.watch(watchers)
	changed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, w := range watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-w.Changed():
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	rotate := time.NewTicker(autoTicketRotation)
	defer rotate.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rotate.C:
			if cur := p.Current(); cur != nil {
				p.rotateAutoTickets(time.Duration(cur.Config.TLS.SessionTicketLifetime) * time.Millisecond)
			}
		case <-reload:
			cfg, err := load()
			if err != nil {
				p.opts.Metrics.Reloads.WithLabelValues("failure").Inc()
				p.opts.Metrics.ReloadFailing.Set(1)
				p.opts.Logger.Error("reload failed: configuration rejected; the previous snapshot keeps serving", "err", err)
			} else {
				err = p.reapply(ctx, cfg, "configuration", watchers)
			}
			if p.opts.OnReload != nil {
				p.opts.OnReload(err)
			}
		case <-changed:
			if cur := p.Current(); cur != nil {
				_ = p.reapply(ctx, cur.Config, "certificate change", watchers) // logged there
			}
		}
	}
}

func (p *Plane) reapply(ctx context.Context, cfg *config.Config, why string, watchers []certs.Watcher) error {
	if err := p.Apply(ctx, cfg); err != nil {
		p.opts.Logger.Error("reload failed; the previous snapshot keeps serving", "trigger", why, "err", err)
		return err
	}
	p.watch(watchers)
	return nil
}

func (p *Plane) watch(watchers []certs.Watcher) {
	cur := p.Current()
	if cur == nil {
		return
	}
	for _, w := range watchers {
		w.Watch(cur.Refs)
	}
}
