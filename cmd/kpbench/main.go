// Command kpbench measures what a Kubernetes Service dataplane costs.
package main

import "github.com/kpbench/kpbench/cmd/kpbench/app"

func main() { app.Main() }
