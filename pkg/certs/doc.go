// Package certs issues and keeps the webhooks' serving certificates (SPEC §4).
//
// Modes (--cert-mode):
//
//   - files: the pair is mounted (cert-manager renders the Certificate, its cainjector the
//     caBundle); the files are re-read when they change. Nothing is written.
//   - self-signed (default): a CA in Secret <cert-secret>-ca (kubernetes.io/tls: tls.crt and
//     tls.key sign, ca.crt is the trust bundle), so any replica can renew.
//   - csr: a CertificateSigningRequest (certificates.k8s.io/v1) with --csr-signer-name,
//     approved by us when RBAC allows, else by someone else; signed within --csr-timeout.
//
// In both managed modes the serving certificate lives in Secret <cert-secret> of type
// kubernetes.io/tls with tls.crt, tls.key and ca.crt; keys are only ever in these Secrets.
// ca.crt is exactly what the webhook configuration's caBundle must carry, and the Manager
// injects it into every webhook of --webhook-config (and re-injects it when something resets
// it: a watch on the configuration plus a check every --cert-check-interval).
//
// Replicas agree through the API server alone: every write carries the resourceVersion read
// (or is a Create), a replica that loses (Conflict, AlreadyExists) reads again and uses what
// the winner stored. There is no leader; all replicas serve whatever the Secret holds, and
// follow it through a watch.
//
// Ordering: a new CA bundle is injected before a certificate it verifies is stored, and it
// keeps the CA certificates the current certificate needs, so no replica's certificate is
// ever unverifiable by the API server. A Secret that does not decode, does not match its key
// or does not verify against its own ca.crt is logged and replaced.
//
// CA rotation (self-signed): leaves are renewed from the same CA at RenewFraction of
// --cert-lifetime. At RenewFraction of --ca-lifetime a next CA is staged: added to ca.crt
// (so injected everywhere) while the old CA still signs; after a short delay (a quarter of
// the old CA's remaining life, at most a minute) it is promoted to signing CA and leaves are
// re-issued from it. The old CA stays in the bundle until it expires, for the leaves other
// replicas still serve.
//
// CA bundle in csr mode: --ca-bundle-file when given; otherwise the cluster CA from the
// kube-root-ca.crt ConfigMap in the controller's namespace (what EKS signs
// beta.eks.amazonaws.com/app-serving certificates with, and kube-controller-manager's
// signers by default) plus any CA certificates the signer returned after the leaf. The issued
// certificate must verify against that bundle, or issuance fails with a message naming the
// source. The bundle is fixed at issuance (a new --ca-bundle-file applies at the next renewal).
//
// RBAC a webhook needs: Secrets get/list/watch/create/update/delete in its namespace;
// mutatingwebhookconfigurations get/list/watch/patch (resourceNames: the configuration);
// csr mode also certificatesigningrequests create/get/list/watch/delete,
// certificatesigningrequests/approval update, signers approve (resourceNames: the signer name)
// and configmaps get (kube-root-ca.crt).
package certs
