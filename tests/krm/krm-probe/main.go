// Command probe is a misbehaving KRM function for the sandbox tests: its functionConfig's
// `action` says what to try.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

type resourceList struct {
	APIVersion     string           `json:"apiVersion"`
	Kind           string           `json:"kind"`
	Items          []map[string]any `json:"items"`
	FunctionConfig map[string]any   `json:"functionConfig,omitempty"`
	Results        []map[string]any `json:"results,omitempty"`
}

func main() {
	in, _ := io.ReadAll(os.Stdin)
	var rl resourceList
	if err := json.Unmarshal(in, &rl); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	action, _ := rl.FunctionConfig["action"].(string)
	note := func(severity, message string) {
		rl.Results = append(rl.Results, map[string]any{"severity": severity, "message": message})
	}
	switch action {
	case "loop":
		for {
		}
	case "hog":
		var hoard [][]byte
		for {
			hoard = append(hoard, make([]byte, 64<<20))
			hoard[len(hoard)-1][0] = 1
		}
	case "flood":
		chunk := strings.Repeat("x", 1<<20)
		for {
			os.Stdout.WriteString(chunk)
		}
	case "escape":
		for _, path := range []string{"/etc/hosts", "/snapshot/../etc/hosts", "../../../../etc/hosts"} {
			if data, err := os.ReadFile(path); err == nil {
				note("error", "read "+path+": "+string(data))
			} else {
				note("info", "cannot read "+path+": "+err.Error())
			}
		}
		if err := os.WriteFile("written.txt", []byte("x"), 0o644); err == nil {
			note("error", "wrote into the snapshot")
		} else {
			note("info", "cannot write: "+err.Error())
		}
		// Fail, so that a renderer's notes come back as its diagnostics.
		for _, r := range rl.Results {
			r["severity"] = "error"
		}
		writeOut(rl)
		os.Exit(1)
	case "env":
		note("info", "env: "+strings.Join(os.Environ(), " ")+" args: "+strings.Join(os.Args, " "))
	case "tree-fail":
		wd, _ := os.Getwd()
		entries, _ := os.ReadDir(".")
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		note("error", "wd: "+wd+" files: "+strings.Join(names, ",")+" env: "+strings.Join(os.Environ(), " "))
		writeOut(rl)
		os.Exit(1)
	case "fail":
		rl.Results = append(rl.Results, map[string]any{
			"severity":    "error",
			"message":     "this object is wrong",
			"resourceRef": map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "name": "second"},
			"file":        map[string]any{"path": "app.yaml", "index": 1},
		})
		writeOut(rl)
		os.Exit(1)
	case "crash":
		fmt.Fprintln(os.Stderr, "going down")
		os.Exit(3)
	}
	writeOut(rl)
}

func writeOut(rl resourceList) {
	out, _ := json.Marshal(rl)
	os.Stdout.Write(out)
}
