package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BreachAction is what happens when a tier misses its SLA.
// +kubebuilder:validation:Enum=Alert;Track;Log
type BreachAction string

const (
	// BreachActionAlert raises a Warning event and a metric on every breach.
	BreachActionAlert BreachAction = "Alert"
	// BreachActionTrack alerts when breaches form a pattern: the error budget
	// burns faster than the window allows.
	BreachActionTrack BreachAction = "Track"
	// BreachActionLog records breaches in status and logs only.
	BreachActionLog BreachAction = "Log"
)

// LatencyObjective is the promise on feed-to-client latency.
type LatencyObjective struct {
	// threshold is the latency a delivery must beat, e.g. 30ms. Positive.
	// What is measured, per tick delivered in a market_data frame: from the
	// feed's publish time (published_us) to the frame's last byte entering
	// the client's socket. That includes the wait for the tier's conflation
	// window (up to its updateInterval), any lag of the data plane behind
	// the tick stream, and the write; snapshots (latest values sent on
	// subscribe) are not measured. A threshold at or below the tier's
	// updateInterval can therefore never be met: set it to the interval plus
	// a margin (the samples use 500ms, 50ms and 20ms above 1s, 100ms and 10ms).
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+(us|ms|s)$')",message="latency.threshold is a whole number with a unit us, ms or s, e.g. 10ms"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+(us|ms|s)$') || duration(self) > duration('0s')",message="latency.threshold must be positive, e.g. 10ms"
	Threshold metav1.Duration `json:"threshold"`

	// objective is the fraction of deliveries within threshold, in (0, 1], e.g. 0.99.
	// +required
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 1.0",message="latency.objective is a fraction in (0, 1], e.g. 0.99"
	Objective float64 `json:"objective"`
}

// AvailabilityObjective is the promise on uptime.
type AvailabilityObjective struct {
	// objective is the fraction of minutes the tier serves, in (0, 1], e.g. 0.999.
	// +required
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 1.0",message="availability.objective is a fraction in (0, 1], e.g. 0.999"
	Objective float64 `json:"objective"`
}

// CreditRule turns missed compliance into a billing credit.
type CreditRule struct {
	// belowCompliance: when compliance over the window falls below this
	// fraction, the credit applies. In (0, 1].
	// +required
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 1.0",message="credits.belowCompliance is a fraction in (0, 1], e.g. 0.999"
	BelowCompliance float64 `json:"belowCompliance"`

	// creditPercent of the monthly price is credited.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	CreditPercent int32 `json:"creditPercent"`
}

// SLAPolicySpec is what a tier promises.
type SLAPolicySpec struct {
	// latency is the promise on ingest-to-client latency.
	// +required
	Latency LatencyObjective `json:"latency"`

	// availability is the promise on uptime.
	// +required
	Availability AvailabilityObjective `json:"availability"`

	// window is the rolling window compliance is measured over, e.g. 30d.
	// +optional
	// +kubebuilder:default="30d"
	Window Period `json:"window,omitempty"`

	// onBreach is what a breach triggers: Alert, Track or Log.
	// +optional
	// +kubebuilder:default=Log
	OnBreach BreachAction `json:"onBreach,omitempty"`

	// credits turn missed compliance into billing credits; the lowest
	// threshold that compliance falls below applies.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Credits []CreditRule `json:"credits,omitempty"`
}

// SLAPolicy condition types.
const (
	// SLAConditionBudgetBurning is True when the error budget burns faster
	// than the window allows.
	SLAConditionBudgetBurning = "BudgetBurning"
	// SLAConditionBreached is True when compliance over the window is below objective.
	SLAConditionBreached = "Breached"
)

// SLAPolicy condition reasons.
const (
	// ReasonNoData: no deliveries were recorded in the window yet.
	ReasonNoData = "NoData"
	// ReasonWithinObjective: compliance meets the objective.
	ReasonWithinObjective = "WithinObjective"
	// ReasonObjectiveMissed: compliance over the window is below objective.
	ReasonObjectiveMissed = "ObjectiveMissed"
	// ReasonFastBurn: the 1h burn rate would spend the budget in days.
	ReasonFastBurn = "FastBurn"
	// ReasonSlowBurn: the 6h burn rate would spend the budget before the window ends.
	ReasonSlowBurn = "SlowBurn"
)

// SLAPolicyStatus is measured compliance over the window.
type SLAPolicyStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, BudgetBurning, Breached.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// compliance is the fraction of deliveries within the latency threshold over the window.
	// +optional
	Compliance *float64 `json:"compliance,omitempty"`

	// availability is the fraction of minutes served over the window.
	// +optional
	Availability *float64 `json:"availability,omitempty"`

	// errorBudgetRemaining is the fraction of the window's error budget left; negative when overspent.
	// +optional
	ErrorBudgetRemaining *float64 `json:"errorBudgetRemaining,omitempty"`

	// burnRate1h is how fast the budget burned over the last hour (1 = exactly on budget).
	// +optional
	BurnRate1h *float64 `json:"burnRate1h,omitempty"`

	// burnRate6h is how fast the budget burned over the last six hours.
	// +optional
	BurnRate6h *float64 `json:"burnRate6h,omitempty"`

	// violations is the number of deliveries over the threshold in the window.
	// +optional
	Violations int64 `json:"violations,omitempty"`

	// lastEvaluated is when the operator last computed this status.
	// +optional
	LastEvaluated *metav1.Time `json:"lastEvaluated,omitempty"`
}

// SLAPolicy is what a tier promises on latency and availability, and what a breach costs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=sla,categories=databridge
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Latency",type=string,JSONPath=`.spec.latency.threshold`
// +kubebuilder:printcolumn:name="Objective",type=number,JSONPath=`.spec.latency.objective`
// +kubebuilder:printcolumn:name="Uptime",type=number,JSONPath=`.spec.availability.objective`
// +kubebuilder:printcolumn:name="Compliance",type=number,JSONPath=`.status.compliance`
// +kubebuilder:printcolumn:name="Budget",type=number,JSONPath=`.status.errorBudgetRemaining`
// +kubebuilder:printcolumn:name="On Breach",type=string,JSONPath=`.spec.onBreach`,priority=1
// +kubebuilder:printcolumn:name="Window",type=string,JSONPath=`.spec.window`,priority=1
// +kubebuilder:printcolumn:name="Violations",type=integer,JSONPath=`.status.violations`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SLAPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the tier promises.
	// +required
	Spec SLAPolicySpec `json:"spec"`

	// status is measured compliance.
	// +optional
	Status SLAPolicyStatus `json:"status,omitempty"`
}

// SLAPolicyList is a list of SLAPolicies.
// +kubebuilder:object:root=true
type SLAPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SLAPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SLAPolicy{}, &SLAPolicyList{})
}
