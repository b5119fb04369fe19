// Command hello is a tiny static program the image tests put in an image.
package main

import "fmt"

func main() { fmt.Println("hello from kpbench image tests") }
