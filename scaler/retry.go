package scaler

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// Retriable reports whether a failed request is worth repeating: the
// apiserver throttled it (429, priority and fairness), timed out, was
// briefly unavailable, or the object changed underneath an update
// (conflict; the caller re-reads before the next attempt), or the
// connection broke.
func Retriable(err error) bool {
	switch {
	case err == nil:
		return false
	case apierrors.IsConflict(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsServiceUnavailable(err):
		return true
	case apierrors.IsInternalError(err):
		// etcd hiccups ("request timed out", "leader changed") come back
		// as 500 with a retry suggestion.
		_, suggests := apierrors.SuggestsClientDelay(err)
		return suggests
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case utilnet.IsConnectionReset(err), utilnet.IsConnectionRefused(err),
		utilnet.IsProbableEOF(err), errors.Is(err, syscall.EPIPE):
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retry runs fn until it succeeds, fails for good, or the backoff's steps
// run out. r counts retries (nil: not counted).
func (s *Scaler) retry(ctx context.Context, r *run, fn func(context.Context) error) error {
	b := s.cfg.Backoff
	for {
		err := fn(ctx)
		if err == nil || !Retriable(err) || b.Steps <= 0 || ctx.Err() != nil {
			return err
		}
		d := b.Step()
		if secs, ok := apierrors.SuggestsClientDelay(err); ok {
			d = max(d, time.Duration(secs)*time.Second)
		}
		if r != nil {
			r.retries.Add(1)
		}
		s.log.Debug("retrying", "after", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
