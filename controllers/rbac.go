package controllers

// The operator reads the databridge resources and owns their status. The
// permissions for what it provisions per tier sit beside the reconcilers that
// write those objects.
//
// +kubebuilder:rbac:groups=databridge.io,resources=subscriptiontiers;tenants;slapolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=databridge.io,resources=subscriptiontiers/status;tenants/status;slapolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
