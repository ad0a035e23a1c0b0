// Package controllers reconciles SubscriptionTier, Tenant and SLAPolicy
// resources into running, per-tier data planes and keeps their status true.
package controllers
