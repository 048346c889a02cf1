package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/headroomhq/headroom/examples/mlpipeline/pipeline"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
)

type manifests struct {
	deployments map[string]appsv1.Deployment
	services    map[string]corev1.Service
	accounts    map[string]corev1.ServiceAccount
	roles       map[string]rbacv1.Role
	bindings    []rbacv1.RoleBinding
	scaled      []kedav1alpha1.ScaledObject
}

// load decodes every document of the files strictly (an unknown or
// misspelt field is an error) into the Kubernetes and KEDA API types.
func load(t *testing.T, files ...string) manifests {
	t.Helper()
	m := manifests{deployments: map[string]appsv1.Deployment{}, services: map[string]corev1.Service{},
		accounts: map[string]corev1.ServiceAccount{}, roles: map[string]rbacv1.Role{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var head struct{ APIVersion, Kind string }
			require.NoError(t, yaml.Unmarshal(doc, &head), "%s #%d", f, i)
			var err error
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				var d appsv1.Deployment
				err = yaml.UnmarshalStrict(doc, &d)
				m.deployments[d.Name] = d
			case "v1 Service":
				var s corev1.Service
				err = yaml.UnmarshalStrict(doc, &s)
				m.services[s.Name] = s
			case "v1 ServiceAccount":
				var a corev1.ServiceAccount
				err = yaml.UnmarshalStrict(doc, &a)
				m.accounts[a.Name] = a
			case "rbac.authorization.k8s.io/v1 Role":
				var r rbacv1.Role
				err = yaml.UnmarshalStrict(doc, &r)
				m.roles[r.Name] = r
			case "rbac.authorization.k8s.io/v1 RoleBinding":
				var b rbacv1.RoleBinding
				err = yaml.UnmarshalStrict(doc, &b)
				m.bindings = append(m.bindings, b)
			case "keda.sh/v1alpha1 ScaledObject":
				var so kedav1alpha1.ScaledObject
				err = yaml.UnmarshalStrict(doc, &so)
				m.scaled = append(m.scaled, so)
			default:
				t.Fatalf("%s #%d: unexpected %s %s", f, i, head.APIVersion, head.Kind)
			}
			require.NoError(t, err, "%s #%d (%s)", f, i, head.Kind)
		}
	}
	return m
}

// The manifests deploy what the code runs: a Deployment per pool of the
// example running `worker <pool>`, each scaled by a ScaledObject whose
// external trigger reaches the scaler's Service and names the pool's task
// queue (a typo'd queue would scale nothing), with the replica bounds of
// the pool's scaling policy and a termination grace period that covers the
// preset's drain window plus the SDK's stop timeout; the GPU pool asks for
// a GPU on a GPU node.
func TestManifestsMatchTheCode(t *testing.T) {
	m := load(t, "workers.yaml", "scaledobjects.yaml")
	reg := queues.Default()
	require.Len(t, m.scaled, len(pipeline.PoolNames), "one ScaledObject per pool")
	pools := map[string]bool{}
	for _, so := range m.scaled {
		d, ok := m.deployments[so.Spec.ScaleTargetRef.Name]
		require.True(t, ok, "ScaledObject %s targets Deployment %q, which is not in workers.yaml", so.Name, so.Spec.ScaleTargetRef.Name)
		c := d.Spec.Template.Spec.Containers[0]
		i := slices.Index(c.Args, "worker")
		require.True(t, i >= 0 && i+1 < len(c.Args), "%s runs `worker <pool>`: %v", d.Name, c.Args)
		name := c.Args[i+1]
		q, ok := pipeline.PoolNames[name]
		require.True(t, ok, "%s: unknown pool %q", d.Name, name)
		pools[name] = true
		assert.Contains(t, c.Args, "-address")

		require.Len(t, so.Spec.Triggers, 1, so.Name)
		tr := so.Spec.Triggers[0]
		assert.Contains(t, []string{"external", "external-push"}, tr.Type, so.Name)
		assert.Equal(t, q.Name, tr.Metadata["taskQueue"], "%s scales the queue its Deployment polls", so.Name)
		_, err := reg.Lookup(tr.Metadata["taskQueue"])
		assert.NoError(t, err, "%s: the trigger's taskQueue is a registered queue", so.Name)
		host, port, err := net.SplitHostPort(tr.Metadata["scalerAddress"])
		require.NoError(t, err, so.Name)
		svc, ok := m.services[host]
		require.True(t, ok, "%s: scalerAddress %q names no Service", so.Name, host)
		assert.Equal(t, port, fmt.Sprint(svc.Spec.Ports[0].Port), so.Name)
		scaler := m.deployments[host]
		assert.Equal(t, svc.Spec.Selector, scaler.Spec.Template.Labels, "the Service selects the scaler's pods")
		args := scaler.Spec.Template.Spec.Containers[0].Args
		assert.Equal(t, "scaler", args[len(args)-1], "the Service's pods run the scaler")
		assert.Contains(t, strings.Join(args, " "), "-listen :"+port, "on the Service's port")

		pol := pipeline.ScalingPolicy(q)
		require.NotNil(t, so.Spec.MinReplicaCount, so.Name)
		require.NotNil(t, so.Spec.MaxReplicaCount, so.Name)
		assert.Equal(t, int32(pol.Min), *so.Spec.MinReplicaCount, "%s: the scaler's Min", so.Name)
		assert.Equal(t, int32(pol.Max), *so.Spec.MaxReplicaCount, "%s: the scaler's Max", so.Name)

		grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
		assert.GreaterOrEqual(t, grace, pool.PresetFor(q.Class).DrainWindow+10*time.Second,
			"%s: Kubernetes waits for the drain before it kills the pod", d.Name)
		_, gpu := c.Resources.Limits["nvidia.com/gpu"]
		assert.Equal(t, q.Class == queues.GPU, gpu, "%s: a GPU only for the GPU pool", d.Name)
		if gpu {
			assert.NotEmpty(t, d.Spec.Template.Spec.NodeSelector, "%s: scheduled on GPU nodes", d.Name)
		}
		assert.Equal(t, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels, d.Name)
		assert.True(t, m.mayPatchPods(d.Spec.Template.Spec.ServiceAccountName), "%s: its service account may patch its pod (deletion cost)", d.Name)
		env := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				env[e.Name] = e.ValueFrom.FieldRef.FieldPath
			}
		}
		assert.Equal(t, map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}, env,
			"%s: the downward API names the pod to annotate", d.Name)
	}
	assert.Len(t, pools, len(pipeline.PoolNames), "every pool deployed once")
}

// mayPatchPods reports whether a RoleBinding gives service account sa a
// Role that may patch pods.
func (m manifests) mayPatchPods(sa string) bool {
	if _, ok := m.accounts[sa]; !ok {
		return false
	}
	for _, b := range m.bindings {
		for _, s := range b.Subjects {
			if s.Kind != "ServiceAccount" || s.Name != sa || b.RoleRef.Kind != "Role" {
				continue
			}
			for _, r := range m.roles[b.RoleRef.Name].Rules {
				if slices.Contains(r.Resources, "pods") && slices.Contains(r.Verbs, "patch") && slices.Contains(r.APIGroups, "") {
					return true
				}
			}
		}
	}
	return false
}

// Strict decoding is what catches a misspelt field; without it the
// manifests above would pass with one.
func TestStrictDecodingCatchesAMisspeltField(t *testing.T) {
	var so kedav1alpha1.ScaledObject
	err := yaml.UnmarshalStrict([]byte("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nspec:\n  maxReplicas: 3\n"), &so)
	assert.ErrorContains(t, err, `unknown field "maxReplicas"`)
}
