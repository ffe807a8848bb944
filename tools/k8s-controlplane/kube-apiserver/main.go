// Command kube-apiserver is upstream's kube-apiserver, built from the Go module proxy.
//
// k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with local paths, so
// `go install ...@version` refuses it; this wrapper module requires it, replaces every staging
// module with its published v0.X.Y tag (see go.mod), and runs the same code as upstream's
// cmd/kube-apiserver/apiserver.go.
package main

import (
	"os"
	_ "time/tzdata" // for timeZone support in CronJob

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // load all the prometheus client-go plugins
	_ "k8s.io/component-base/metrics/prometheus/version"  // for version metric registration
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
