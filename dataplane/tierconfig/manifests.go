package tierconfig

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	dbv1 "github.com/databridge-io/databridge/api/v1alpha1"
	"github.com/databridge-io/databridge/dataplane/catalog"
)

// LoadManifests reads the SubscriptionTiers, Tenants and SLAPolicies from
// every *.yaml and *.yml file directly in dir, for standalone mode: the same
// files a cluster admin would kubectl apply. Files may hold many documents.
// Objects of other kinds (Namespaces, Secrets, ...) are skipped, as they mean
// nothing without a cluster.
//
// databridge.io objects are decoded strictly, as kubectl's server-side field
// validation would: an unknown or misspelt field is an error naming the
// file, the object and the field, where a lenient decoder would silently drop
// it and sell the wrong tier. Empty fields then get the CRD defaults the API
// server applies, and a Tenant without a namespace lands in "default", as
// with kubectl. Results are sorted by name (Tenants by namespace/name).
func LoadManifests(dir string) (tiers []dbv1.SubscriptionTier, tenants []dbv1.Tenant, slas []dbv1.SLAPolicy, err error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, nil, nil, err
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, nil, nil, fmt.Errorf("read manifests: %w", err)
		}
		return nil, nil, nil, fmt.Errorf("no *.yaml files in %s: point at a directory of SubscriptionTier, Tenant and SLAPolicy manifests such as config/samples", dir)
	}

	origin := map[string]string{} // kind/namespace/name -> where first defined
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read manifests: %w", err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for doc := 1; ; doc++ {
			raw, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
			}
			obj, err := decodeManifest(raw)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
			}
			var key, desc string
			switch o := obj.(type) {
			case nil:
				continue
			case *dbv1.SubscriptionTier:
				defaultTier(o)
				tiers = append(tiers, *o)
				key, desc = "SubscriptionTier/"+o.Name, fmt.Sprintf("SubscriptionTier %q", o.Name)
			case *dbv1.SLAPolicy:
				defaultSLAPolicy(o)
				slas = append(slas, *o)
				key, desc = "SLAPolicy/"+o.Name, fmt.Sprintf("SLAPolicy %q", o.Name)
			case *dbv1.Tenant:
				if o.Namespace == "" {
					o.Namespace = "default"
				}
				tenants = append(tenants, *o)
				key, desc = "Tenant/"+o.Namespace+"/"+o.Name, fmt.Sprintf("Tenant %q", o.Namespace+"/"+o.Name)
			}
			where := fmt.Sprintf("%s document %d", file, doc)
			if prev, dup := origin[key]; dup {
				return nil, nil, nil, fmt.Errorf("%s is defined twice, in %s and in %s; keep one", desc, prev, where)
			}
			origin[key] = where
		}
	}
	if len(tiers) == 0 {
		return nil, nil, nil, fmt.Errorf("no SubscriptionTier in %s: standalone mode needs at least one tier; see config/samples", dir)
	}
	slices.SortFunc(tiers, func(a, b dbv1.SubscriptionTier) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(slas, func(a, b dbv1.SLAPolicy) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(tenants, func(a, b dbv1.Tenant) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return tiers, tenants, slas, nil
}

// decodeManifest decodes one YAML document. It returns nil for an empty
// document and for kinds outside databridge.io.
func decodeManifest(raw []byte) (any, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	if head.APIVersion == "" && head.Kind == "" {
		if len(bytes.TrimSpace(raw)) == 0 || isCommentOnly(raw) {
			return nil, nil
		}
		return nil, errors.New("no apiVersion or kind: every document must be a Kubernetes object")
	}
	group, _, _ := strings.Cut(head.APIVersion, "/")
	if group != dbv1.GroupVersion.Group {
		return nil, nil
	}
	if head.APIVersion != dbv1.GroupVersion.String() {
		return nil, fmt.Errorf("%s %q: apiVersion %q is not supported; this build reads %s",
			head.Kind, head.Metadata.Name, head.APIVersion, dbv1.GroupVersion)
	}
	var obj any
	switch head.Kind {
	case "SubscriptionTier":
		obj = new(dbv1.SubscriptionTier)
	case "Tenant":
		obj = new(dbv1.Tenant)
	case "SLAPolicy":
		obj = new(dbv1.SLAPolicy)
	default:
		return nil, fmt.Errorf("kind %q is not a %s kind; want SubscriptionTier, Tenant or SLAPolicy",
			head.Kind, dbv1.GroupVersion.Group)
	}
	if err := yaml.UnmarshalStrict(raw, obj); err != nil {
		return nil, fmt.Errorf("%s %q: %w", head.Kind, head.Metadata.Name, err)
	}
	return obj, nil
}

func isCommentOnly(raw []byte) bool {
	for _, line := range bytes.Split(raw, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}

// CompileAll compiles every tier and groups the tenants by tier, for
// standalone mode. keys returns the API key of a tenant's user (tenant is
// the "<namespace>/<name>" id) at a key generation, or "" for none; only its
// hash is kept. Every tier gets a Tenants value, empty or not.
//
// Unlike the operator, which reports a broken object on its status and
// carries on, CompileAll fails on the first problem, naming the objects
// involved: standalone mode is run by a person who can fix the YAML now.
func CompileAll(tiers []dbv1.SubscriptionTier, tenants []dbv1.Tenant, slas []dbv1.SLAPolicy,
	keys func(tenant, user string, generation int64) string) (map[string]*Tier, map[string]*Tenants, error) {
	slaByName := make(map[string]*dbv1.SLAPolicy, len(slas))
	for i := range slas {
		slaByName[slas[i].Name] = &slas[i]
	}
	compiled := make(map[string]*Tier, len(tiers))
	var names []string
	for _, tr := range tiers {
		if _, dup := compiled[tr.Name]; dup {
			return nil, nil, fmt.Errorf("SubscriptionTier %q is defined twice; keep one", tr.Name)
		}
		var sla *dbv1.SLAPolicy
		if tr.Spec.SLAPolicy != "" {
			if sla = slaByName[tr.Spec.SLAPolicy]; sla == nil {
				return nil, nil, fmt.Errorf("SubscriptionTier %q names slaPolicy %q, which does not exist; define that SLAPolicy or remove spec.slaPolicy",
					tr.Name, tr.Spec.SLAPolicy)
			}
		}
		t, err := CompileTier(tr, sla, tiers)
		if err != nil {
			return nil, nil, err
		}
		compiled[tr.Name] = t
		names = append(names, tr.Name)
	}
	slices.Sort(names)

	byTier := make(map[string][]Tenant, len(tiers))
	for _, tn := range tenants {
		id := tn.Namespace + "/" + tn.Name
		if _, ok := compiled[tn.Spec.Tier]; !ok {
			return nil, nil, fmt.Errorf("Tenant %q is on tier %q, which does not exist; use one of: %s",
				id, tn.Spec.Tier, strings.Join(names, ", "))
		}
		if tn.Spec.Overrides != nil {
			for _, s := range tn.Spec.Overrides.Symbols {
				if !catalog.Valid(string(s)) {
					return nil, nil, fmt.Errorf("Tenant %q: overrides.symbols has %q, which is not in the catalogue; valid symbols: %s",
						id, s, strings.Join(catalog.Names(), ", "))
				}
			}
		}
		hashes := make(map[string]string, len(tn.Spec.Users))
		for _, u := range tn.Spec.Users {
			if keys == nil {
				break
			}
			if k := keys(id, u.Name, u.KeyGeneration); k != "" {
				hashes[u.Name] = HashKey(k)
			}
		}
		byTier[tn.Spec.Tier] = append(byTier[tn.Spec.Tier], CompileTenant(tn, hashes))
	}
	out := make(map[string]*Tenants, len(compiled))
	for name := range compiled {
		out[name] = NewTenants(name, byTier[name])
	}
	// Check what a data plane would check on load, so that standalone mode
	// fails here rather than at the first connection.
	for name, t := range compiled {
		if _, err := NewRegistry(t, out[name]); err != nil {
			return nil, nil, err
		}
	}
	return compiled, out, nil
}
