package tierconfig

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"sync"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	reg := mustRegistry(t, tier, compileTenants("free",
		testTenant("lumen", withUsers("alice", "bob"), withKeyGeneration("bob", 2)),
		testTenant("frozen", suspended()),
	))

	tests := []struct {
		name      string
		key       string
		wantErr   error
		wantID    string
		wantUser  string
		wantGen   int64
		wantEmpty bool // the principal must be the zero value
	}{
		{"right key", fakeKey("tenant-lumen/lumen", "alice", 0), nil, "tenant-lumen/lumen", "alice", 0, false},
		{"current key after rotation", fakeKey("tenant-lumen/lumen", "bob", 2), nil, "tenant-lumen/lumen", "bob", 2, false},
		{"rotated-out key", fakeKey("tenant-lumen/lumen", "bob", 1), ErrUnknownKey, "", "", 0, true},
		{"wrong key", "dbk_" + strings.Repeat("x", 43), ErrUnknownKey, "", "", 0, true},
		{"another user's name", fakeKey("tenant-lumen/lumen", "carol", 0), ErrUnknownKey, "", "", 0, true},
		{"empty key", "", ErrUnknownKey, "", "", 0, true},
		{"suspended tenant", fakeKey("tenant-frozen/frozen", "alice", 0), ErrSuspended, "tenant-frozen/frozen", "alice", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := reg.Authenticate(tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Authenticate error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantEmpty {
				if p != (Principal{}) {
					t.Errorf("principal = %+v, want none with %v", p, err)
				}
				return
			}
			if p.TenantID != tt.wantID || p.User != tt.wantUser || p.KeyGeneration != tt.wantGen || p.Tenant == nil || p.Tenant.ID != tt.wantID {
				t.Errorf("principal = %+v, want tenant %s user %s generation %d", p, tt.wantID, tt.wantUser, tt.wantGen)
			}
			if p.Company != p.Tenant.Company || p.Company == "" {
				t.Errorf("principal company %q, tenant company %q", p.Company, p.Tenant.Company)
			}
		})
	}
}

// TestAuthenticateComparesInConstantTime proves the key hash comparison is
// crypto/subtle's, in two ways. Statically: Authenticate and Revalidate call
// subtle.ConstantTimeCompare, and nothing in registry.go compares bytes with
// == or bytes.Equal. (A swappable function variable would prove it at run
// time, but an indirect call makes the hash escape to the heap, costing an
// allocation per connection.) Behaviourally: a stored hash that shares the
// presented hash's 8-byte index prefix is still refused, so the index alone
// never decides.
func TestAuthenticateComparesInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "registry.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			return true
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if pkg, ok := n.X.(*ast.Ident); ok {
					switch pkg.Name + "." + n.Sel.Name {
					case "subtle.ConstantTimeCompare":
						calls[fn.Name.Name]++
					case "bytes.Equal", "bytes.Compare", "reflect.DeepEqual":
						t.Errorf("%s: %s uses %s.%s on key material", fset.Position(n.Pos()), fn.Name.Name, pkg.Name, n.Sel.Name)
					}
				}
			case *ast.BinaryExpr:
				// Comparing with a literal ("" for "no key issued") reveals
				// nothing about a key.
				_, litX := n.X.(*ast.BasicLit)
				_, litY := n.Y.(*ast.BasicLit)
				if (n.Op == token.EQL || n.Op == token.NEQ) && !litX && !litY && (mentionsHash(n.X) || mentionsHash(n.Y)) {
					t.Errorf("%s: %s compares a hash with %s", fset.Position(n.Pos()), fn.Name.Name, n.Op)
				}
			}
			return true
		})
		return false
	})
	for _, fn := range []string{"Authenticate", "Revalidate"} {
		if calls[fn] == 0 {
			t.Errorf("%s does not call subtle.ConstantTimeCompare", fn)
		}
	}

	tier := mustCompile(t, testTier("free"))
	tenants := compileTenants("free", testTenant("lumen"))
	reg := mustRegistry(t, tier, tenants)
	sum := hashKeyBytes("dbk_forged")
	var near [32]byte
	copy(near[:8], sum[:8])
	near[31] = ^sum[31]
	reg.byPrefix[prefix(&sum)] = []entry{{hash: near, tenant: &tenants.Tenants[0], user: &tenants.Tenants[0].Users[0]}}
	if _, err := reg.Authenticate("dbk_forged"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("key whose hash shares an index prefix with a stored one: %v, want ErrUnknownKey", err)
	}
}

// mentionsHash reports whether an expression names something hash-like
// (sum, hash, keyHash, ...), other than a length.
func mentionsHash(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "len" {
				return false
			}
		}
		if id, ok := n.(*ast.Ident); ok {
			name := strings.ToLower(id.Name)
			if name == "sum" || name == "h" || strings.Contains(name, "hash") {
				found = true
			}
		}
		return true
	})
	return found
}

func TestNewRegistryErrors(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	shared := compileTenants("free", testTenant("a"), testTenant("b"))
	shared.Tenants[1].Users[0].KeyHash = shared.Tenants[0].Users[0].KeyHash
	badHash := compileTenants("free", testTenant("a"))
	badHash.Tenants[0].Users[0].KeyHash = "zz"
	unsorted := compileTenants("free", testTenant("a"))
	unsorted.Tenants[0].ExtraSymbols = []string{"USDTRY", "EURCHF"}
	dup := compileTenants("free", testTenant("a"))
	dup.Tenants = append(dup.Tenants, dup.Tenants[0])
	dup.Tenants[1].Users = nil

	tests := []struct {
		name    string
		tenants *Tenants
		want    []string
	}{
		{"wrong tier", compileTenants("pro"), []string{`tier "pro"`, `"free"`, "databridge-tier-free-tenants"}},
		{"shared key", shared, []string{"tenant-a/a user alice", "tenant-b/b user alice", "keyGeneration"}},
		{"bad hash", badHash, []string{`keyHash "zz"`}},
		{"unsorted extras", unsorted, []string{"extraSymbols", "sorted"}},
		{"duplicate tenant", dup, []string{`"tenant-a/a" appears twice`}},
		{"nil tenants", nil, []string{"both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRegistry(tier, tt.tenants)
			if err == nil {
				t.Fatal("NewRegistry succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRevalidateAfterReload(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	before := mustRegistry(t, tier, compileTenants("free",
		testTenant("stay"), testTenant("rotate"), testTenant("freeze"), testTenant("move"), testTenant("leave")))
	after := compileTenants("free",
		testTenant("stay", withExtraSymbols("USDTRY")), testTenant("rotate", withKeyGeneration("alice", 1)),
		testTenant("freeze", suspended()))
	after.Moved = []Move{{ID: "tenant-move/move", Tier: "pro", Endpoint: "ws://pro/v1/stream"}}
	reg := mustRegistry(t, tier, after)

	tests := []struct {
		tenant  string
		wantErr error
	}{
		{"stay", nil},
		{"rotate", ErrUnknownKey},
		{"freeze", ErrSuspended},
		{"move", ErrTierChanged},
		{"leave", ErrUnknownKey},
	}
	for _, tt := range tests {
		id := "tenant-" + tt.tenant + "/" + tt.tenant
		old, err := before.Authenticate(fakeKey(id, "alice", 0))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		p, err := reg.Revalidate(old)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: Revalidate error = %v, want %v", id, err, tt.wantErr)
			continue
		}
		if err == nil || errors.Is(err, ErrSuspended) {
			if want, _ := reg.Tenant(id); p.Tenant != want {
				t.Errorf("%s: revalidated principal points at the old tenant", id)
			}
		}
	}
	if m, ok := reg.Moved("tenant-move/move"); !ok || m.Endpoint != "ws://pro/v1/stream" {
		t.Errorf("Moved = %+v, %v", m, ok)
	}
	p, _ := before.Authenticate(fakeKey("tenant-stay/stay", "alice", 0))
	p, _ = reg.Revalidate(p)
	if !tier.Entitled(p.Tenant, "USDTRY") {
		t.Errorf("revalidated principal does not see the tenant's new override")
	}
}

func TestAuthenticateConcurrently(t *testing.T) {
	s := loadSamples(t)
	tiers, tenants, err := CompileAll(s.tiers, s.tenants, s.slas, fakeKey)
	if err != nil {
		t.Fatal(err)
	}
	reg := mustRegistry(t, tiers["pro"], tenants["pro"])
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := fakeKey("tenant-northwind/northwind", "desk", 0)
				if (g+i)%2 == 1 {
					key = "dbk_nope"
				}
				p, err := reg.Authenticate(key)
				if (err == nil) != ((g+i)%2 == 0) || (err == nil && !tiers["pro"].Entitled(p.Tenant, "USDCHF")) {
					t.Errorf("goroutine %d call %d: %+v, %v", g, i, p, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestAuthenticateDoesNotAllocate(t *testing.T) {
	tier := mustCompile(t, testTier("free"))
	reg := mustRegistry(t, tier, compileTenants("free", testTenant("lumen")))
	key, err := NewKeyGenerator(nil).NewKey()
	if err != nil {
		t.Fatal(err)
	}
	good := fakeKey("tenant-lumen/lumen", "alice", 0)
	if n := testing.AllocsPerRun(1000, func() {
		_, _ = reg.Authenticate(good)
		_, _ = reg.Authenticate(key.Reveal())
	}); n != 0 {
		t.Errorf("Authenticate allocates %v times per call, want 0", n)
	}
}
