// Package scaler brings the number of synthetic Services in a namespace to
// exactly N: selector-less ClusterIP Services, each with one EndpointSlice
// whose endpoints are the real backend pods, so every Service answers. It
// creates or deletes as needed (idempotent: the same N twice writes nothing),
// writes through a bounded worker pool with retries on throttling and
// conflicts, and can wait until kube-proxy has programmed the result
// (Wait). Progress goes to a small interface, so the package has no
// terminal logic of its own.
//
// Wait (programmed.go) decides "programmed" from kube-proxy's own metrics:
// no changes pending, a sync that ended after the scaler's last write, and
// the last-created Service answering a connect; for a kube-proxy
// replacement, the connect alone.
//
// The scaletest subpackage gives its tests, and the CLI's, a real etcd and
// kube-apiserver on loopback.
package scaler
