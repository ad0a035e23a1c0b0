package usage_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/databridge-io/databridge/internal/usage"
	"github.com/databridge-io/databridge/internal/usage/usagetest"
)

func openSQLite(t testing.TB) *usage.SQLiteStore {
	t.Helper()
	st, err := usage.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "usage.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestSQLiteStore(t *testing.T) {
	t.Parallel()
	usagetest.Run(t, func(t *testing.T) usage.Store { return openSQLite(t) })
}
