//go:build tools

// Package tools pins the helm-unittest command so `go mod tidy` records its modules.
package tools

import _ "github.com/helm-unittest/helm-unittest/cmd/helm-unittest"
