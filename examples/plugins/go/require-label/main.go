// Command require-label is an example KRM validator written with kyaml's fn/framework: an
// object without the label `key` (its functionConfig) is an error, naming the object and
// the file it came from.
package main

import (
	"os"

	"sigs.k8s.io/kustomize/kyaml/fn/framework"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

type Config struct {
	Key string `json:"key" yaml:"key"`
}

func main() {
	p := framework.ResourceListProcessorFunc(func(rl *framework.ResourceList) error {
		var cfg Config
		if err := framework.LoadFunctionConfig(rl.FunctionConfig, &cfg); err != nil {
			return err
		}
		var results framework.Results
		for _, item := range rl.Items {
			if _, ok := item.GetLabels()[cfg.Key]; ok {
				continue
			}
			path, index, _ := kioutil.GetFileAnnotations(item)
			result := &framework.Result{
				Message:     "missing label " + cfg.Key,
				Severity:    framework.Error,
				ResourceRef: &yaml.ResourceIdentifier{TypeMeta: yaml.TypeMeta{APIVersion: item.GetApiVersion(), Kind: item.GetKind()}, NameMeta: yaml.NameMeta{Name: item.GetName(), Namespace: item.GetNamespace()}},
			}
			if path != "" {
				result.File = &framework.File{Path: path, Index: atoi(index)}
			}
			results = append(results, result)
		}
		rl.Results = append(rl.Results, results...)
		if len(results) > 0 {
			return results
		}
		return nil
	})
	if err := framework.Execute(p, &kio.ByteReadWriter{Reader: os.Stdin, Writer: os.Stdout}); err != nil {
		os.Exit(1)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}
