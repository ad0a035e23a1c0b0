package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SymbolGroup names a built-in group of symbols in the catalogue.
// +kubebuilder:validation:Enum=fx-majors;fx-free
type SymbolGroup string

const (
	// SymbolGroupFXMajors is the 28 pairs of the major currencies
	// (EUR USD GBP JPY CHF AUD CAD NZD).
	SymbolGroupFXMajors SymbolGroup = "fx-majors"
	// SymbolGroupFXFree is EURUSD GBPUSD USDJPY EURGBP AUDUSD.
	SymbolGroupFXFree SymbolGroup = "fx-free"
)

// DataQuality is how much a tier checks and adds to each tick.
// +kubebuilder:validation:Enum=Basic;High;Premium
type DataQuality string

const (
	// DataQualityBasic drops impossible ticks: non-positive or crossed prices
	// and jumps beyond a rolling volatility estimate.
	DataQualityBasic DataQuality = "Basic"
	// DataQualityHigh adds FX market hours and a quality score from spread and staleness.
	DataQualityHigh DataQuality = "High"
	// DataQualityPremium adds a liquidity score and market context
	// (trading session, rolling volatility).
	DataQualityPremium DataQuality = "Premium"
)

// SymbolSelector selects symbols from the catalogue: everything, named groups
// and single symbols, minus exclusions.
// +kubebuilder:validation:XValidation:rule="(has(self.all) && self.all) || (has(self.groups) && size(self.groups) > 0) || (has(self.include) && size(self.include) > 0)",message="symbols selects nothing: set all: true, name groups (fx-majors, fx-free) or include symbols"
// +kubebuilder:validation:XValidation:rule="!(has(self.all) && self.all && has(self.include) && size(self.include) > 0)",message="symbols.include is redundant with all: true; remove one"
type SymbolSelector struct {
	// all selects every symbol in the catalogue.
	// +optional
	All bool `json:"all,omitempty"`

	// groups names built-in groups: fx-majors, fx-free.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Groups []SymbolGroup `json:"groups,omitempty"`

	// include adds single symbols, e.g. EURUSD.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	Include []Symbol `json:"include,omitempty"`

	// exclude removes symbols that all, groups or include selected.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	Exclude []Symbol `json:"exclude,omitempty"`
}

// Quotas bound what a tenant may use. Daily counters reset at 00:00 UTC.
// +kubebuilder:validation:XValidation:rule="!has(self.maxConnectionsPerTenant) || self.maxConnectionsPerTenant >= self.maxConnectionsPerUser",message="maxConnectionsPerTenant must be at least maxConnectionsPerUser"
// +kubebuilder:validation:XValidation:rule="!has(self.dailyAPICallsPerUser) || !has(self.dailyAPICalls) || self.dailyAPICallsPerUser <= self.dailyAPICalls",message="dailyAPICallsPerUser must not exceed dailyAPICalls, the whole tenant's quota"
// +kubebuilder:validation:XValidation:rule="!has(self.dailyDataPointsPerUser) || !has(self.dailyDataPoints) || self.dailyDataPointsPerUser <= self.dailyDataPoints",message="dailyDataPointsPerUser must not exceed dailyDataPoints, the whole tenant's quota"
type Quotas struct {
	// dailyAPICalls is how many REST calls and stream subscriptions a tenant
	// may make per UTC day. Unset means unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DailyAPICalls *int64 `json:"dailyAPICalls,omitempty"`

	// dailyDataPoints is how many ticks a tenant may receive per UTC day.
	// Unset means unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DailyDataPoints *int64 `json:"dailyDataPoints,omitempty"`

	// dailyAPICallsPerUser caps each user (API key) of a tenant within the
	// tenant's daily API calls, so that one runaway client cannot use up
	// the whole company's quota. Unset means only the tenant's quota applies.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DailyAPICallsPerUser *int64 `json:"dailyAPICallsPerUser,omitempty"`

	// dailyDataPointsPerUser caps each user of a tenant within the tenant's
	// daily data points. Unset means only the tenant's quota applies.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DailyDataPointsPerUser *int64 `json:"dailyDataPointsPerUser,omitempty"`

	// maxConnectionsPerUser is how many stream connections one user (one API
	// key) may hold at once.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MaxConnectionsPerUser int32 `json:"maxConnectionsPerUser,omitempty"`

	// maxConnectionsPerTenant is how many stream connections all of a
	// tenant's users may hold at once. Unset means users × maxConnectionsPerUser.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxConnectionsPerTenant *int32 `json:"maxConnectionsPerTenant,omitempty"`
}

// Price is what a tier costs per month.
type Price struct {
	// monthly is the monthly price as a decimal string, e.g. "99" or "99.50".
	// +required
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,9})([.][0-9]{1,2})?$')",message="price.monthly is a decimal amount with at most two decimals, e.g. \"99\" or \"99.50\""
	Monthly string `json:"monthly"`

	// currency is an ISO 4217 code, e.g. USD.
	// +required
	// +kubebuilder:validation:MaxLength=3
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Z]{3}$')",message="price.currency is a three-letter ISO 4217 code such as USD or EUR"
	Currency string `json:"currency"`
}

// ServiceSpec is how a tier's data plane is exposed.
type ServiceSpec struct {
	// type is the Kubernetes Service type.
	// +optional
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	Type corev1.ServiceType `json:"type,omitempty"`

	// port is the port clients connect to.
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
}

// AutoscalingSpec scales a tier's data plane on connections per pod.
// +kubebuilder:validation:XValidation:rule="self.maxReplicas >= self.minReplicas",message="autoscaling.maxReplicas must be at least minReplicas"
type AutoscalingSpec struct {
	// minReplicas is the fewest pods.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the most pods.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`

	// targetConnectionsPerPod is the average number of open stream
	// connections per pod the autoscaler aims for.
	// +required
	// +kubebuilder:validation:Minimum=1
	TargetConnectionsPerPod int32 `json:"targetConnectionsPerPod"`
}

// DataPlaneSpec is how the operator runs a tier's data plane.
type DataPlaneSpec struct {
	// replicas is the number of data-plane pods when autoscaling is unset.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// image overrides the data-plane image the operator was started with.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// resources are the data-plane container's requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// autoscaling, when set, creates a HorizontalPodAutoscaler and replicas is ignored.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// service is how clients reach the data plane.
	// +optional
	// +kubebuilder:default={}
	Service ServiceSpec `json:"service,omitempty"`
}

// SubscriptionTierSpec is what a plan includes.
type SubscriptionTierSpec struct {
	// symbols selects the symbols the tier entitles its tenants to.
	// +required
	Symbols SymbolSelector `json:"symbols"`

	// updateInterval is the conflation window: a client gets at most one update
	// per symbol per window, always the latest value. Between 1ms and 1h.
	// +optional
	// +kubebuilder:default="1s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+(ms|s|m|h)$')",message="updateInterval is a whole number with a unit ms, s, m or h, e.g. 100ms"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+(ms|s|m|h)$') || (duration(self) >= duration('1ms') && duration(self) <= duration('1h'))",message="updateInterval must be between 1ms and 1h"
	UpdateInterval metav1.Duration `json:"updateInterval,omitempty"`

	// dataQuality is how much the tier checks and adds to each tick.
	// +optional
	// +kubebuilder:default=Basic
	DataQuality DataQuality `json:"dataQuality,omitempty"`

	// quotas bound each tenant's daily usage and connections.
	// +optional
	// +kubebuilder:default={}
	Quotas Quotas `json:"quotas,omitempty"`

	// historyRetention is how far back /v1/history reaches, e.g. 7d.
	// +optional
	// +kubebuilder:default="7d"
	HistoryRetention Period `json:"historyRetention,omitempty"`

	// slaPolicy names the SLAPolicy the tier promises.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SLAPolicy string `json:"slaPolicy,omitempty"`

	// price is what the tier costs per month; billing and revenue reports use it.
	// +required
	Price Price `json:"price"`

	// supportLevel describes the support that comes with the tier, e.g. email. Informational.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	SupportLevel string `json:"supportLevel,omitempty"`

	// dataPlane is how the operator runs the tier's data plane.
	// +optional
	// +kubebuilder:default={}
	DataPlane DataPlaneSpec `json:"dataPlane,omitempty"`
}

// SubscriptionTier condition types.
const (
	// TierConditionAvailable is True when at least one data-plane pod is ready to serve.
	TierConditionAvailable = "Available"
	// TierConditionDegraded is True when fewer pods are ready than desired.
	TierConditionDegraded = "Degraded"
)

// SubscriptionTier condition reasons.
const (
	// ReasonInvalidSymbols: the symbol selector names something the catalogue does not have.
	ReasonInvalidSymbols = "InvalidSymbols"
	// ReasonSLAPolicyNotFound: spec.slaPolicy names an SLAPolicy that does not exist.
	ReasonSLAPolicyNotFound = "SLAPolicyNotFound"
	// ReasonReplicasReady: every desired data-plane pod is ready.
	ReasonReplicasReady = "ReplicasReady"
	// ReasonReplicasUnavailable: fewer data-plane pods are ready than desired.
	ReasonReplicasUnavailable = "ReplicasUnavailable"
	// ReasonScaledToZero: the tier runs no pods on purpose.
	ReasonScaledToZero = "ScaledToZero"
)

// SubscriptionTierStatus is the observed state of a tier's data plane.
type SubscriptionTierStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Available, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// endpoint is the WebSocket URL clients of this tier connect to.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// readyReplicas is the number of ready data-plane pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// tenants is the number of Tenants on this tier.
	// +optional
	Tenants int32 `json:"tenants,omitempty"`

	// activeConnections is the number of open stream connections across the tier.
	// +optional
	ActiveConnections int64 `json:"activeConnections,omitempty"`

	// entitledSymbols is the number of symbols the selector resolves to.
	// +optional
	EntitledSymbols int32 `json:"entitledSymbols,omitempty"`
}

// SubscriptionTier is a plan: which symbols, how fast, what quality and how much.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=tier;tiers,categories=databridge
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Interval",type=string,JSONPath=`.spec.updateInterval`
// +kubebuilder:printcolumn:name="Quality",type=string,JSONPath=`.spec.dataQuality`
// +kubebuilder:printcolumn:name="Symbols",type=integer,JSONPath=`.status.entitledSymbols`
// +kubebuilder:printcolumn:name="Tenants",type=integer,JSONPath=`.status.tenants`
// +kubebuilder:printcolumn:name="Connections",type=integer,JSONPath=`.status.activeConnections`
// +kubebuilder:printcolumn:name="Price",type=string,JSONPath=`.spec.price.monthly`,priority=1
// +kubebuilder:printcolumn:name="Currency",type=string,JSONPath=`.spec.price.currency`,priority=1
// +kubebuilder:printcolumn:name="SLA",type=string,JSONPath=`.spec.slaPolicy`,priority=1
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SubscriptionTier struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the plan includes.
	// +required
	Spec SubscriptionTierSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status SubscriptionTierStatus `json:"status,omitempty"`
}

// SubscriptionTierList is a list of SubscriptionTiers.
// +kubebuilder:object:root=true
type SubscriptionTierList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SubscriptionTier `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SubscriptionTier{}, &SubscriptionTierList{})
}
