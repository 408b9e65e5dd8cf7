//go:build tools

// Package tools pins the cert-manager commands this wrapper builds.
package tools

import (
	_ "github.com/cert-manager/cert-manager/cmd/cainjector"
	_ "github.com/cert-manager/cert-manager/cmd/controller"
)
