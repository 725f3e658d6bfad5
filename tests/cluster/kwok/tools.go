//go:build tools

// Package kwok names the kwok program (simulated nodes and pods) the test
// harness builds. It lives in its own module because kwok's dependency set
// differs from k8s.io/kubernetes'; the k8s.io/* libraries are raised to the
// same v0.36.3 as ../go.mod so their compiled packages are shared in GOCACHE.
package kwok

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
