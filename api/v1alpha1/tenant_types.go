package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TenantUser is one person or program of a tenant; each gets its own API key.
type TenantUser struct {
	// name identifies the user within the tenant, e.g. alice or pricing-bot.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$')",message="a user name is lower-case letters, digits, '-', '.' or '_', starting and ending with a letter or digit"
	Name string `json:"name"`

	// keyGeneration rotates the user's API key: raise it and the operator
	// issues a new key and revokes the old one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	KeyGeneration int64 `json:"keyGeneration,omitempty"`
}

// QuotaOverrides replace single quotas of the tenant's tier.
// +kubebuilder:validation:XValidation:rule="!has(self.maxConnectionsPerTenant) || !has(self.maxConnectionsPerUser) || self.maxConnectionsPerTenant >= self.maxConnectionsPerUser",message="maxConnectionsPerTenant must be at least maxConnectionsPerUser"
type QuotaOverrides struct {
	// dailyAPICalls replaces the tier's daily API call quota.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DailyAPICalls *int64 `json:"dailyAPICalls,omitempty"`

	// dailyDataPoints replaces the tier's daily data point quota.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DailyDataPoints *int64 `json:"dailyDataPoints,omitempty"`

	// dailyAPICallsPerUser replaces the tier's per-user daily API call cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DailyAPICallsPerUser *int64 `json:"dailyAPICallsPerUser,omitempty"`

	// dailyDataPointsPerUser replaces the tier's per-user daily data point cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DailyDataPointsPerUser *int64 `json:"dailyDataPointsPerUser,omitempty"`

	// maxConnectionsPerUser replaces the tier's per-user connection limit.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MaxConnectionsPerUser *int32 `json:"maxConnectionsPerUser,omitempty"`

	// maxConnectionsPerTenant replaces the tier's per-tenant connection limit.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxConnectionsPerTenant *int32 `json:"maxConnectionsPerTenant,omitempty"`
}

// TenantOverrides are a deal's exceptions to its tier.
type TenantOverrides struct {
	// symbols are entitled on top of the tier's selection.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	Symbols []Symbol `json:"symbols,omitempty"`

	// quotas replace single quotas of the tier.
	// +optional
	Quotas *QuotaOverrides `json:"quotas,omitempty"`
}

// TenantSpec is a company's subscription.
type TenantSpec struct {
	// companyName is the customer's name as it appears on invoices.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	CompanyName string `json:"companyName"`

	// tier names the SubscriptionTier the tenant pays for. Changing it moves the
	// tenant: live sessions on the old tier are closed with a message naming
	// the new endpoint.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="tier is the name of a SubscriptionTier: lower-case letters, digits and '-'"
	Tier string `json:"tier"`

	// users each get an API key, written to the tenant's credentials Secret.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=1000
	Users []TenantUser `json:"users,omitempty"`

	// suspended closes the tenant's sessions and refuses new ones, keeping its
	// keys and usage history.
	// +optional
	Suspended bool `json:"suspended,omitempty"`

	// overrides are the tenant's exceptions to its tier.
	// +optional
	Overrides *TenantOverrides `json:"overrides,omitempty"`
}

// Tenant condition types.
const (
	// TenantConditionQuotaExceeded is True while a daily quota is used up.
	TenantConditionQuotaExceeded = "QuotaExceeded"
	// TenantConditionSuspended is True while spec.suspended is set.
	TenantConditionSuspended = "Suspended"
)

// Tenant condition reasons.
const (
	// ReasonTierNotFound: spec.tier names a SubscriptionTier that does not exist.
	ReasonTierNotFound = "TierNotFound"
	// ReasonCredentialsFailed: the credentials Secret could not be written.
	ReasonCredentialsFailed = "CredentialsFailed"
	// ReasonWithinQuota: every daily quota has room left.
	ReasonWithinQuota = "WithinQuota"
	// ReasonDailyAPICallsExceeded: today's API calls reached the quota.
	ReasonDailyAPICallsExceeded = "DailyAPICallsExceeded"
	// ReasonDailyDataPointsExceeded: today's data points reached the quota.
	ReasonDailyDataPointsExceeded = "DailyDataPointsExceeded"
	// ReasonSuspendedBySpec: spec.suspended is true.
	ReasonSuspendedBySpec = "SuspendedBySpec"
	// ReasonActive: the tenant is not suspended.
	ReasonActive = "Active"
)

// DailyUsage is a tenant's usage for the current UTC day.
type DailyUsage struct {
	// apiCalls made today.
	// +optional
	APICalls int64 `json:"apiCalls,omitempty"`

	// dataPoints received today.
	// +optional
	DataPoints int64 `json:"dataPoints,omitempty"`

	// apiCallsPercent of the daily quota; unset when unlimited.
	// +optional
	APICallsPercent *int32 `json:"apiCallsPercent,omitempty"`

	// dataPointsPercent of the daily quota; unset when unlimited.
	// +optional
	DataPointsPercent *int32 `json:"dataPointsPercent,omitempty"`

	// percentOfQuota is the higher of apiCallsPercent and dataPointsPercent.
	// +optional
	PercentOfQuota *int32 `json:"percentOfQuota,omitempty"`

	// resetAt is when the daily counters return to zero (next 00:00 UTC).
	// +optional
	ResetAt *metav1.Time `json:"resetAt,omitempty"`

	// upgradeRecommended is true above 80% of any daily quota.
	// +optional
	UpgradeRecommended bool `json:"upgradeRecommended,omitempty"`
}

// PeriodUsage is a tenant's usage over a billing period.
type PeriodUsage struct {
	// period is the billing month, e.g. 2026-11.
	// +optional
	Period string `json:"period,omitempty"`

	// apiCalls made in the period.
	// +optional
	APICalls int64 `json:"apiCalls,omitempty"`

	// dataPoints received in the period.
	// +optional
	DataPoints int64 `json:"dataPoints,omitempty"`
}

// TenantStatus is the observed state of a tenant's subscription.
type TenantStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, QuotaExceeded, Suspended.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// tier is the tier the tenant is provisioned on.
	// +optional
	Tier string `json:"tier,omitempty"`

	// endpoint is the WebSocket URL the tenant's users connect to.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// credentialsSecret names the Secret in this namespace holding the users' API keys.
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`

	// usage is today's usage against quota.
	// +optional
	Usage *DailyUsage `json:"usage,omitempty"`

	// monthToDate is this month's usage so far.
	// +optional
	MonthToDate *PeriodUsage `json:"monthToDate,omitempty"`

	// activeConnections is the number of the tenant's open stream connections.
	// +optional
	ActiveConnections int64 `json:"activeConnections,omitempty"`
}

// Tenant is a company subscribed to a tier, with its users.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=tn,categories=databridge
// +kubebuilder:printcolumn:name="Company",type=string,JSONPath=`.spec.companyName`
// +kubebuilder:printcolumn:name="Tier",type=string,JSONPath=`.spec.tier`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Quota %",type=integer,JSONPath=`.status.usage.percentOfQuota`
// +kubebuilder:printcolumn:name="Connections",type=integer,JSONPath=`.status.activeConnections`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspended`,priority=1
// +kubebuilder:printcolumn:name="API Calls",type=integer,JSONPath=`.status.usage.apiCalls`,priority=1
// +kubebuilder:printcolumn:name="Data Points",type=integer,JSONPath=`.status.usage.dataPoints`,priority=1
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the company's subscription.
	// +required
	Spec TenantSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status TenantStatus `json:"status,omitempty"`
}

// TenantList is a list of Tenants.
// +kubebuilder:object:root=true
type TenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tenant `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Tenant{}, &TenantList{})
}
