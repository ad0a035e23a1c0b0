package tierconfig

import (
	"fmt"
	"os"
	"path/filepath"
)

// Where the compiled config lives. The operator writes TierKey into the
// ConfigMap ConfigMapName(tier) and TenantsKey into the Secret
// SecretName(tier); the data-plane Deployment mounts them as two volumes
// under one directory, which is what Load and Watcher read:
//
//	<dir>/tier/tier.json        ConfigMap databridge-tier-<tier>, mounted at <dir>/tier
//	<dir>/tenants/tenants.json  Secret databridge-tier-<tier>-tenants, mounted at <dir>/tenants
//
// Two volumes rather than one projected volume so that each keeps its own
// atomic update (the kubelet swaps a volume's ..data symlink as a whole).
const (
	// TierKey is the ConfigMap key, and file name, of the compiled Tier.
	TierKey = "tier.json"
	// TenantsKey is the Secret key, and file name, of the tier's Tenants.
	TenantsKey = "tenants.json"
	// TierDir is the mount point of the ConfigMap, relative to the config dir.
	TierDir = "tier"
	// TenantsDir is the mount point of the Secret, relative to the config dir.
	TenantsDir = "tenants"
)

// ConfigMapName is the name of the ConfigMap holding tier's compiled Tier.
func ConfigMapName(tier string) string { return "databridge-tier-" + tier }

// SecretName is the name of the Secret holding tier's compiled Tenants.
func SecretName(tier string) string { return ConfigMapName(tier) + "-tenants" }

// Load reads and checks the tier and tenants files under dir (see TierDir
// and TenantsDir for the layout) and checks they belong together.
func Load(dir string) (*Tier, *Tenants, error) {
	tierData, tenantsData, err := readConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	tier, tenants, _, err := parseConfig(dir, tierData, tenantsData)
	return tier, tenants, err
}

func tierPath(dir string) string    { return filepath.Join(dir, TierDir, TierKey) }
func tenantsPath(dir string) string { return filepath.Join(dir, TenantsDir, TenantsKey) }

func readConfig(dir string) (tierData, tenantsData []byte, err error) {
	tierData, err = os.ReadFile(tierPath(dir))
	if err != nil {
		return nil, nil, fmt.Errorf("read tier config: %w (want ConfigMap %s mounted at %s)",
			err, ConfigMapName("<tier>"), filepath.Join(dir, TierDir))
	}
	tenantsData, err = os.ReadFile(tenantsPath(dir))
	if err != nil {
		return nil, nil, fmt.Errorf("read tenants config: %w (want Secret %s mounted at %s)",
			err, SecretName("<tier>"), filepath.Join(dir, TenantsDir))
	}
	return tierData, tenantsData, nil
}

// parseConfig parses both files and builds their Registry, so that a
// config only counts as good if the data plane could serve with it.
func parseConfig(dir string, tierData, tenantsData []byte) (*Tier, *Tenants, *Registry, error) {
	tier, err := ParseTier(tierData)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", tierPath(dir), err)
	}
	tenants, err := ParseTenants(tenantsData)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", tenantsPath(dir), err)
	}
	reg, err := NewRegistry(tier, tenants)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", tenantsPath(dir), err)
	}
	return tier, tenants, reg, nil
}
