package existing

// In-cluster load: each window's load clients run as Jobs on the client
// nodes, and their summaries are read from the pods' logs.

import (
	"context"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/manifests"
)

// RunLoad runs one load window as req.Clients Jobs on the client nodes
// and returns each client's JSON summary. The Jobs are deleted afterwards.
func (p *Provider) RunLoad(ctx context.Context, req clusters.LoadRequest) ([]clusters.LoadResult, error) {
	cfg := p.Placement()
	if cfg.ClientSelector == nil {
		var err error
		if cfg, err = p.placementFor(ctx); err != nil {
			return nil, err
		}
	}
	jobs, err := manifests.LoadJobs(cfg, manifests.LoadSpec{RunID: req.ID, Args: req.Args, Clients: req.Clients, Deadline: req.Deadline})
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		policy := metav1.DeletePropagationBackground
		for _, j := range jobs {
			err := p.cs.BatchV1().Jobs(manifests.Namespace).Delete(cctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
			if err != nil && !apierrors.IsNotFound(err) {
				p.opts.Logger.Warn("deleting load job", "job", j.Name, "err", err)
			}
		}
	}()
	for _, j := range jobs {
		if err := p.createJob(ctx, j); err != nil {
			return nil, err
		}
	}
	timeout := req.Deadline + 3*time.Minute
	pending := map[string]bool{}
	for _, j := range jobs {
		pending[j.Name] = true
	}
	var failures []error
	err = wait.PollUntilContextTimeout(ctx, p.opts.PollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		for name := range pending {
			j, err := p.cs.BatchV1().Jobs(manifests.Namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, fmt.Errorf("reading load job %s: %w", name, err)
			}
			done, failed, reason := jobFinished(j)
			if !done {
				continue
			}
			delete(pending, name)
			if failed {
				failures = append(failures, p.jobFailure(ctx, name, reason))
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for load jobs: %w", errors.Join(append(failures, err)...))
	}
	if len(failures) > 0 {
		return nil, errors.Join(failures...)
	}
	results := make([]clusters.LoadResult, 0, len(jobs))
	for i, j := range jobs {
		pod, err := jobPod(ctx, p.cs, j.Name)
		if err != nil {
			return nil, err
		}
		log, err := p.logs(ctx, pod.Name)
		if err != nil {
			return nil, err
		}
		sum, err := manifests.ParseSummary(log)
		if err != nil {
			return nil, fmt.Errorf("load client %d (pod %s): %w; log ends: %s", i, pod.Name, err, logTail(log, 400))
		}
		results = append(results, clusters.LoadResult{Client: i, Pod: pod.Name, Node: pod.Spec.NodeName, Summary: sum})
	}
	return results, nil
}

// createJob creates a load Job, replacing one of the same name left by an
// interrupted run.
func (p *Provider) createJob(ctx context.Context, j *batchv1.Job) error {
	jobs := p.cs.BatchV1().Jobs(manifests.Namespace)
	_, err := jobs.Create(ctx, j, metav1.CreateOptions{FieldManager: "kpbench"})
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("creating load job %s: %w", j.Name, err)
		}
		return nil
	}
	p.opts.Logger.Warn("replacing a load job left by an earlier run", "job", j.Name)
	policy := metav1.DeletePropagationBackground
	if err := jobs.Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting stale load job %s: %w", j.Name, err)
	}
	err = wait.PollUntilContextTimeout(ctx, p.opts.PollInterval, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := jobs.Create(ctx, j, metav1.CreateOptions{FieldManager: "kpbench"})
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("creating load job %s: %w", j.Name, err)
	}
	return nil
}

func (p *Provider) jobFailure(ctx context.Context, job, reason string) error {
	msg := fmt.Sprintf("load job %s failed: %s", job, reason)
	if pod, err := jobPod(ctx, p.cs, job); err == nil {
		if log, err := p.logs(ctx, pod.Name); err == nil {
			msg += "; log ends: " + logTail(log, 400)
		}
	}
	return errors.New(msg)
}
