package v1alpha1_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// readSamples returns every object in config/samples, in file order.
func readSamples(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found in config/samples: %v", err)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
	}
	return objs
}

// TestSamplesApply creates every sample (dry run, under a fresh name, so it does
// not matter what else applied them) with strict field validation: a sample
// with a misspelt or unknown field fails here rather than being silently pruned.
func TestSamplesApply(t *testing.T) {
	ctx := t.Context()
	counts := map[string]int{}
	for _, obj := range readSamples(t) {
		counts[obj.GetKind()]++
		if obj.GetKind() == "Namespace" {
			if err := k8sClient.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("namespace %s: %v", obj.GetName(), err)
			}
			continue
		}
		obj.SetName(obj.GetName() + "-sample-check")
		err := k8sClient.Create(ctx, obj, client.DryRunAll, client.FieldValidation("Strict"))
		if err != nil {
			t.Errorf("sample %s %s/%s refused: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
	want := map[string]int{"SubscriptionTier": 3, "SLAPolicy": 3, "Tenant": 3, "Namespace": 3}
	for kind, n := range want {
		if counts[kind] != n {
			t.Errorf("config/samples has %d %s objects, want %d", counts[kind], kind, n)
		}
	}

	// Each sample tenant lives in its own namespace and has two users.
	namespaces := map[string]bool{}
	for _, obj := range readSamples(t) {
		if obj.GetKind() != "Tenant" {
			continue
		}
		namespaces[obj.GetNamespace()] = true
		users, _, _ := unstructured.NestedSlice(obj.Object, "spec", "users")
		if len(users) != 2 {
			t.Errorf("sample tenant %s has %d users, want 2", obj.GetName(), len(users))
		}
	}
	if len(namespaces) != 3 {
		t.Errorf("sample tenants share namespaces: %v", namespaces)
	}
}
