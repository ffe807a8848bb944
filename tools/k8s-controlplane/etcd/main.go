// Command etcd is upstream etcd's server, built from the Go module proxy.
//
// go.etcd.io/etcd/server/v3 carries replace directives, so `go install ...@version` refuses it;
// this wrapper module requires it and calls the same entry point as upstream's server/main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
