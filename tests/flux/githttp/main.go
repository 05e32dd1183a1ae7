// githttp serves the git repositories under a directory over smart HTTP on loopback, by
// running `git http-backend` as a CGI program (Go's net/http/cgi), for the benchmarks
// that fetch over HTTP as Flux's source-controller does.
//
//	githttp -root DIR -listen 127.0.0.1:0
//
// Prints the address it listens on, then serves until killed.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os/exec"
)

func main() {
	root := flag.String("root", ".", "directory holding the repositories")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	git, err := exec.LookPath("git")
	if err != nil {
		log.Fatal(err)
	}
	handler := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + *root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Addr().String())
	log.Fatal(http.Serve(l, handler))
}
