package scaling

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
)

// DeletionCostAnnotation is the Pod annotation the ReplicaSet controller
// reads when it scales in: pods of lower cost are removed first.
const DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// serviceAccount is where Kubernetes mounts a pod's API credentials.
const serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"

// DeletionCostOptions configures [RunDeletionCost]. In a pod with the
// downward API's POD_NAME and POD_NAMESPACE set and a service account that
// may patch pods, only InUse is needed.
type DeletionCostOptions struct {
	// InUse returns the worker's slots in use now (the sum of its activity
	// suppliers' Stats.Used). Required.
	InUse func() int
	// Interval between two looks; the annotation is patched only when the
	// value changed, and no more often than this (Kubernetes asks that it
	// not be updated often). Zero: 10 s.
	Interval time.Duration
	// Pod and Namespace of this worker. Empty: $POD_NAME, and $POD_NAMESPACE
	// or the service account's namespace file.
	Pod, Namespace string
	// APIServer is the API server's base URL. Empty: in-cluster
	// (https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, with the
	// service account's token and CA).
	APIServer string
	// Token authenticates to APIServer. Empty with APIServer empty: the
	// service account's token, read again before each patch (it rotates).
	Token string
	// HTTPClient sends the patches. Nil: one trusting the service
	// account's CA.
	HTTPClient *http.Client
	Logger     log.Logger
}

// RunDeletionCost keeps this worker's pod annotated with its slots in use
// as its deletion cost until ctx ends, so that a scale-in removes idle
// replicas before busy ones (scaling's floor keeps the count; this picks
// which pods go). It returns an error at once for bad options or when not
// in a cluster; later failures to patch are logged and retried.
func RunDeletionCost(ctx context.Context, opts DeletionCostOptions) error {
	p, err := newPatcher(opts)
	if err != nil {
		return err
	}
	every := opts.Interval
	if every <= 0 {
		every = 10 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	last, failing := -1, false
	for {
		if n := opts.InUse(); n != last {
			if err := p.patch(ctx, n); err != nil {
				if !failing && ctx.Err() == nil && opts.Logger != nil {
					opts.Logger.Warn("headroom: cannot set the pod's deletion cost; a scale-in may remove a busy replica", "error", err)
				}
				failing = true
			} else {
				last, failing = n, false
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

type patcher struct {
	url       string
	token     string
	tokenFile string
	client    *http.Client
}

func newPatcher(o DeletionCostOptions) (*patcher, error) {
	if o.InUse == nil {
		return nil, errors.New("scaling: DeletionCostOptions.InUse is nil")
	}
	pod := cmp.Or(o.Pod, os.Getenv("POD_NAME"))
	ns := cmp.Or(o.Namespace, os.Getenv("POD_NAMESPACE"))
	if ns == "" {
		if b, err := os.ReadFile(serviceAccount + "/namespace"); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	if pod == "" || ns == "" {
		return nil, errors.New("scaling: DeletionCostOptions.Pod and .Namespace are unknown (set POD_NAME and POD_NAMESPACE from the downward API)")
	}
	p := &patcher{token: o.Token, client: o.HTTPClient}
	base := o.APIServer
	if base == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("scaling: not in a Kubernetes pod (no KUBERNETES_SERVICE_HOST) and DeletionCostOptions.APIServer is empty")
		}
		base = "https://" + net.JoinHostPort(host, port)
		if p.token == "" {
			p.tokenFile = serviceAccount + "/token"
		}
		if p.client == nil {
			ca, err := os.ReadFile(serviceAccount + "/ca.crt")
			if err != nil {
				return nil, fmt.Errorf("scaling: the service account's CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return nil, errors.New("scaling: the service account's ca.crt holds no certificate")
			}
			p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		}
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 10 * time.Second}
	}
	p.url = strings.TrimSuffix(base, "/") + "/api/v1/namespaces/" + ns + "/pods/" + pod
	return p, nil
}

// patch sets the annotation to n (a JSON merge patch of metadata only).
func (p *patcher) patch(ctx context.Context, n int) error {
	token := p.token
	if p.tokenFile != "" {
		b, err := os.ReadFile(p.tokenFile)
		if err != nil {
			return fmt.Errorf("service account token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	body := `{"metadata":{"annotations":{"` + DeletionCostAnnotation + `":"` + strconv.Itoa(n) + `"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, p.url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("PATCH %s: %s: %s", p.url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
