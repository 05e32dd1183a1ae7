// Command set-label is an example KRM transformer written with kyaml's fn/framework: it
// sets the label `key` to `value` (its functionConfig) on every object.
package main

import (
	"os"

	"sigs.k8s.io/kustomize/kyaml/fn/framework"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

type Config struct {
	Key   string `json:"key" yaml:"key"`
	Value string `json:"value" yaml:"value"`
}

func main() {
	var cfg Config
	p := framework.SimpleProcessor{
		Config: &cfg,
		Filter: kio.FilterFunc(func(items []*yaml.RNode) ([]*yaml.RNode, error) {
			for _, item := range items {
				if err := item.PipeE(yaml.SetLabel(cfg.Key, cfg.Value)); err != nil {
					return nil, err
				}
			}
			return items, nil
		}),
	}
	if err := framework.Execute(p, &kio.ByteReadWriter{Reader: os.Stdin, Writer: os.Stdout}); err != nil {
		os.Exit(1)
	}
}
