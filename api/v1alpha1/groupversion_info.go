// Package v1alpha1 contains the databridge.io/v1alpha1 API: SubscriptionTier,
// Tenant and SLAPolicy, the resources a cluster admin writes to sell market
// data on subscription tiers.
//
// +kubebuilder:object:generate=true
// +groupName=databridge.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "databridge.io", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
