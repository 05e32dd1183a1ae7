// Command kustomize is Moor's kustomize renderer: the real sigs.k8s.io/kustomize/api,
// built to a WebAssembly module (GOOS=wasip1 GOARCH=wasm) that speaks the KRM Functions
// Specification on stdin and stdout.
//
// It renders its working directory (the pipeline's directory in the read-only snapshot,
// which the host sets as PWD) as `kustomize build` does. Where the directory has no
// kustomization file, it renders one generated from every manifest under it, as Flux's
// kustomize-controller does. The load restrictor stays on; there is no network, so remote
// bases fail with a clear error; Helm charts (helmCharts) are off, since the sandbox cannot
// run the helm binary.
//
// Errors become results of severity error, with the file when kustomize names one.
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/fn/framework"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Config is the step's `with` table, the ResourceList's functionConfig.
type Config struct {
	// Path, relative to the working directory, of the directory to render (default ".").
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
}

func main() {
	processor := framework.ResourceListProcessorFunc(func(rl *framework.ResourceList) error {
		nodes, err := render(rl.FunctionConfig)
		if err != nil {
			// Results go out in the ResourceList; the error makes the exit code 1.
			result := &framework.Result{Message: err.Error(), Severity: framework.Error}
			rl.Results = append(rl.Results, result)
			return framework.Results{result}
		}
		rl.Items = append(rl.Items, nodes...)
		return nil
	})
	if err := framework.Execute(processor, &kio.ByteReadWriter{Reader: os.Stdin, Writer: os.Stdout}); err != nil {
		os.Exit(1)
	}
}

// render builds the directory the functionConfig's `path` names, under the working
// directory.
func render(functionConfig *yaml.RNode) ([]*yaml.RNode, error) {
	var cfg Config
	if err := framework.LoadFunctionConfig(functionConfig, &cfg); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	dir, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("no working directory: %w", err)
	}
	if cfg.Path != "" {
		dir = filepath.Join(dir, cfg.Path)
	}
	nodes, err := build(dir)
	if err != nil {
		return nil, fmt.Errorf("%s", explain(err))
	}
	return nodes, nil
}

// build runs kustomize on dir, generating a kustomization when dir has none.
func build(dir string) ([]*yaml.RNode, error) {
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	fSys := filesys.MakeFsOnDisk()
	if !hasKustomization(fSys, dir) {
		generated, err := generate(dir)
		if err != nil {
			return nil, err
		}
		fSys = generated
	}
	resources, err := krusty.MakeKustomizer(opts).Run(fSys, dir)
	if err != nil {
		return nil, err
	}
	// What `kustomize build` prints: objects through sigs.k8s.io/yaml, so that YAML 1.1
	// spellings in the sources (`defaultMode: 0755`) come out as the values kubectl reads.
	out, err := resources.AsYaml()
	if err != nil {
		return nil, err
	}
	return kio.FromBytes(out)
}

func hasKustomization(fSys filesys.FileSystem, dir string) bool {
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		if fSys.Exists(filepath.Join(dir, name)) {
			return true
		}
	}
	return false
}

// generate copies dir into memory with a kustomization.yaml listing every manifest under
// it (and, for a subdirectory with its own kustomization, that directory), as Flux does.
func generate(dir string) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	var resources []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if path != dir && hasKustomization(filesys.MakeFsOnDisk(), path) {
				resources = append(resources, rel)
				return copyTree(mem, path)
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !isManifest(data) {
			return nil
		}
		resources = append(resources, rel)
		return mem.WriteFile(path, data)
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(resources)
	k := types.Kustomization{TypeMeta: types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind}, Resources: resources}
	data, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	return mem, mem.WriteFile(filepath.Join(dir, konfig.DefaultKustomizationFileName()), data)
}

func copyTree(mem filesys.FileSystem, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile(path, data)
	})
}

// isManifest: a document with apiVersion and kind (a values file or a JSON array is not).
func isManifest(data []byte) bool {
	nodes, err := kio.FromBytes(data)
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if n.GetApiVersion() != "" && n.GetKind() != "" {
			return true
		}
	}
	return false
}

// explain turns kustomize's errors about what the sandbox cannot do into advice.
func explain(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "git") && (strings.Contains(msg, "://") || strings.Contains(msg, "github.com")) {
		return "remote bases are not supported (the renderer has no network): vendor them into the repository: " + msg
	}
	return msg
}
