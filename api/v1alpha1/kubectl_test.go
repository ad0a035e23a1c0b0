package v1alpha1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// kubectl runs the kubectl built beside the test API server (same version)
// against it, as a cluster admin would.
type kubectl struct {
	bin        string
	kubeconfig string
}

func newKubectl(t *testing.T) *kubectl {
	t.Helper()
	bin := filepath.Join(assetsPath, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no kubectl in KUBEBUILDER_ASSETS (%s): run `hack/envtest.sh`, which builds it beside kube-apiserver", assetsPath)
	}
	user, err := testEnv.AddUser(envtest.User{Name: "cluster-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return &kubectl{bin: bin, kubeconfig: path}
}

// run runs kubectl with stdin and returns stdout, stderr and the error.
func (k *kubectl) run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), k.bin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (k *kubectl) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := k.run(t, "", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func TestKubectlAppliesAndListsSamples(t *testing.T) {
	k := newKubectl(t)

	out := k.mustRun(t, "apply", "-f", filepath.Join(repoRoot, "config", "samples"))
	for _, want := range []string{
		"subscriptiontier.databridge.io/free", "subscriptiontier.databridge.io/pro", "subscriptiontier.databridge.io/enterprise",
		"slapolicy.databridge.io/free", "slapolicy.databridge.io/pro", "slapolicy.databridge.io/enterprise",
		"tenant.databridge.io/lumen", "tenant.databridge.io/northwind", "tenant.databridge.io/acme",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply output lacks %s:\n%s", want, out)
		}
	}

	// The category lists all three kinds, each under its own print columns.
	out = k.mustRun(t, "get", "databridge", "--all-namespaces")
	for _, header := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^NAME\s+READY\s+LATENCY\s+OBJECTIVE\s+UPTIME\s+COMPLIANCE\s+BUDGET\s+AGE$`),
		regexp.MustCompile(`(?m)^NAME\s+READY\s+INTERVAL\s+QUALITY\s+SYMBOLS\s+TENANTS\s+CONNECTIONS\s+AGE$`),
		regexp.MustCompile(`(?m)^NAMESPACE\s+NAME\s+COMPANY\s+TIER\s+READY\s+QUOTA %\s+CONNECTIONS\s+AGE$`),
	} {
		if !header.MatchString(out) {
			t.Errorf("kubectl get databridge lacks a header matching %s:\n%s", header, out)
		}
	}
	for _, row := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^slapolicy\.databridge\.io/free\s+1500ms\s+0\.99\s+0\.99\s`),
		regexp.MustCompile(`(?m)^slapolicy\.databridge\.io/pro\s+150ms\s+0\.999\s+0\.999\s`),
		regexp.MustCompile(`(?m)^slapolicy\.databridge\.io/enterprise\s+30ms\s+0\.9999\s+0\.9999\s`),
		regexp.MustCompile(`(?m)^subscriptiontier\.databridge\.io/free\s+1s\s+Basic\s`),
		regexp.MustCompile(`(?m)^subscriptiontier\.databridge\.io/pro\s+100ms\s+High\s`),
		regexp.MustCompile(`(?m)^subscriptiontier\.databridge\.io/enterprise\s+10ms\s+Premium\s`),
		regexp.MustCompile(`(?m)^tenant-lumen\s+tenant\.databridge\.io/lumen\s+Lumen Analytics\s+free\s`),
		regexp.MustCompile(`(?m)^tenant-northwind\s+tenant\.databridge\.io/northwind\s+Northwind Trading\s+pro\s`),
		regexp.MustCompile(`(?m)^tenant-acme\s+tenant\.databridge\.io/acme\s+Acme Capital\s+enterprise\s`),
	} {
		if !row.MatchString(out) {
			t.Errorf("kubectl get databridge lacks a row matching %s:\n%s", row, out)
		}
	}

	t.Logf("kubectl get databridge --all-namespaces:\n%s", out)

	// Short names and the wide columns.
	out = k.mustRun(t, "get", "tier", "-o", "wide")
	if !regexp.MustCompile(`(?m)^pro\s+100ms\s+High\s+99\s+USD\s+pro\s+\S+$`).MatchString(out) {
		t.Errorf("kubectl get tier -o wide lacks the pro row with price and SLA:\n%s", out)
	}
	k.mustRun(t, "get", "sla", "enterprise")
	k.mustRun(t, "get", "tn", "-n", "tenant-acme", "acme")
}

func TestKubectlShowsValidationMessages(t *testing.T) {
	k := newKubectl(t)
	bad := `apiVersion: databridge.io/v1alpha1
kind: SubscriptionTier
metadata:
  name: too-fast
spec:
  symbols: {}
  updateInterval: 500us
  price: {monthly: "10", currency: usd}
  quotas: {maxConnectionsPerUser: 5, maxConnectionsPerTenant: 2}
`
	_, errOut, err := k.run(t, bad, "apply", "-f", "-")
	if err == nil {
		t.Fatal("kubectl apply accepted an invalid tier")
	}
	t.Logf("kubectl apply of an invalid tier:\n%s", errOut)
	for _, want := range []string{
		"updateInterval is a whole number with a unit ms, s, m or h",
		"symbols selects nothing",
		"price.currency is a three-letter ISO 4217 code",
		"maxConnectionsPerTenant must be at least maxConnectionsPerUser",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("kubectl's error lacks %q:\n%s", want, errOut)
		}
	}
}
