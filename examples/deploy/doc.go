// Package deploy holds the example's Kubernetes manifests (workers.yaml,
// scaledobjects.yaml) and the test that keeps them true to the code.
package deploy
