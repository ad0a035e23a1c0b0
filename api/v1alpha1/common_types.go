package v1alpha1

// Symbol is a currency pair: six capital letters, base then quote, e.g. EURUSD.
// +kubebuilder:validation:MaxLength=6
// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Z]{6}$')",message="a symbol is six capital letters, base then quote currency, e.g. EURUSD"
type Symbol string

// Period is a span of whole days or hours, written like "30d" or "24h".
// +kubebuilder:validation:MaxLength=8
// +kubebuilder:validation:XValidation:rule="self.matches('^[1-9][0-9]{0,4}[dh]$')",message="a period is a whole number of days or hours, e.g. 7d, 90d or 24h"
type Period string

// Condition types shared by every kind.
const (
	// ConditionReady is True when the resource is fully in effect.
	ConditionReady = "Ready"
)

// Reasons shared by every kind.
const (
	// ReasonReconciling: the operator is still bringing the world in line with the spec.
	ReasonReconciling = "Reconciling"
	// ReasonReconciled: the world matches the spec.
	ReasonReconciled = "Reconciled"
)
