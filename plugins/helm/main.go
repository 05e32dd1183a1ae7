// Command helm is Moor's Helm renderer: the real helm.sh/helm/v4 (the chart loader, the
// template engine and the manifest sorter that `helm template` runs), built to a WebAssembly module
// (GOOS=wasip1 GOARCH=wasm) that speaks the KRM Functions Specification on stdin and stdout.
//
// It renders a chart directory (or archive) in the read-only snapshot as
//
//	helm template RELEASE CHART --namespace NS --include-crds --skip-tests \
//	  --kube-version V --api-versions A,B,… -f VALUES… (then the inline values)
//
// prints it: CRDs from crds/ first, then the manifests in Helm's install order, then the
// hooks (unless `hooks = "exclude"`). Test hooks are never rendered.
//
// The host passes the render context in the environment: MOOR_PIPELINE (the default
// release name), MOOR_NAMESPACE (the release namespace), and, when it knows the target
// cluster, MOOR_KUBE_VERSION and MOOR_API_VERSIONS (comma-separated), which become
// .Capabilities. `lookup` returns nothing, as in `helm template`: there is no cluster and
// no network in the sandbox.
//
// Each object carries the template it came from (config.kubernetes.io/path, relative to
// the working directory). Template errors (`required`, `fail`, parse errors) become results
// naming the template's file and line.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	sigsyaml "sigs.k8s.io/yaml"
)

// Config is the step's `with` table, the ResourceList's functionConfig.
type Config struct {
	// Chart directory or archive, relative to the working directory (default: the working
	// directory, or the one .tgz in it).
	Chart string `json:"chart,omitempty"`
	// Release name (default: the pipeline's name).
	ReleaseName string `json:"release_name,omitempty"`
	// Release namespace (default: the pipeline's target namespace).
	Namespace string `json:"namespace,omitempty"`
	// Values files, relative to the working directory, merged in order over the chart's.
	Values []string `json:"values,omitempty"`
	// Inline values, merged last.
	Set map[string]any `json:"set,omitempty"`
	// Hooks: "include" (default: rendered as ordinary objects) or "exclude".
	Hooks string `json:"hooks,omitempty"`
	// CRDs from crds/ (default true).
	IncludeCRDs *bool `json:"include_crds,omitempty"`
	// Overrides of what the host says about the cluster.
	KubeVersion string   `json:"kube_version,omitempty"`
	APIVersions []string `json:"api_versions,omitempty"`
	// Skip the chart's values.schema.json.
	SkipSchemaValidation bool `json:"skip_schema_validation,omitempty"`
}

const (
	pathAnnotation  = "config.kubernetes.io/path"
	indexAnnotation = "config.kubernetes.io/index"
)

// result is one entry of the ResourceList's `results`. `file.line` is Moor's addition to
// the specification's `file` (path, index): templates have lines, not object indexes.
type result struct {
	Message  string      `json:"message"`
	Severity string      `json:"severity"`
	File     *resultFile `json:"file,omitempty"`
}

type resultFile struct {
	Path string `json:"path"`
	Line int    `json:"line,omitempty"`
}

func main() {
	// Helm logs through slog; its warnings go to stderr, which the host keeps as the log.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	items, chartDir, err := run(os.Stdin)
	out := map[string]any{
		"apiVersion": "config.kubernetes.io/v1",
		"kind":       "ResourceList",
		"items":      items,
	}
	if err != nil {
		out["results"] = []result{diagnose(err, chartDir)}
	}
	if encodeErr := json.NewEncoder(os.Stdout).Encode(out); encodeErr != nil {
		fmt.Fprintln(os.Stderr, encodeErr)
		os.Exit(1)
	}
	if err != nil {
		os.Exit(1)
	}
}

// run reads the ResourceList and renders the chart its functionConfig names: the objects
// and the chart's directory.
func run(in io.Reader) ([]map[string]any, string, error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, ".", fmt.Errorf("reading the ResourceList: %w", err)
	}
	var list struct {
		Items          []json.RawMessage `json:"items"`
		FunctionConfig json.RawMessage   `json:"functionConfig"`
	}
	if err := sigsyaml.Unmarshal(data, &list); err != nil {
		return nil, ".", fmt.Errorf("reading the ResourceList: %w", err)
	}
	if len(list.Items) > 0 {
		return nil, ".", errors.New("the helm renderer renders a chart from the source tree: put it first in the render chain")
	}
	var cfg Config
	if len(list.FunctionConfig) > 0 && string(list.FunctionConfig) != "null" {
		decoder := json.NewDecoder(bytes.NewReader(list.FunctionConfig))
		decoder.DisallowUnknownFields()
		if err := decoder.Decode(&cfg); err != nil {
			return nil, ".", fmt.Errorf("invalid config: %w", err)
		}
	}
	if cfg.Chart == "" {
		chart, err := defaultChart()
		if err != nil {
			return nil, ".", err
		}
		cfg.Chart = chart
	}
	items, err := render(cfg)
	return items, cfg.Chart, err
}

func render(cfg Config) ([]map[string]any, error) {
	switch cfg.Hooks {
	case "", "include", "exclude":
	default:
		return nil, fmt.Errorf("invalid config: hooks = %q: use \"include\" or \"exclude\"", cfg.Hooks)
	}
	chartDir := cfg.Chart
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("loading the chart %s: %w", chartDir, err)
	}
	if t := chrt.Metadata.Type; t != "" && t != "application" {
		return nil, fmt.Errorf("chart %s: %s charts are not installable", chartDir, t)
	}
	if err := checkDependencies(chrt); err != nil {
		return nil, fmt.Errorf("chart %s: %w: vendor them into charts/ (helm dependency build) and commit them", chartDir, err)
	}
	vals, err := mergeValues(cfg)
	if err != nil {
		return nil, err
	}

	release := common.ReleaseOptions{
		Name:      firstOf(cfg.ReleaseName, os.Getenv("MOOR_PIPELINE"), "release-name"),
		Namespace: firstOf(cfg.Namespace, os.Getenv("MOOR_NAMESPACE"), "default"),
		Revision:  1,
		IsInstall: true,
	}
	if err := chartutil.ValidateReleaseName(release.Name); err != nil {
		return nil, fmt.Errorf("release name %q: %w", release.Name, err)
	}
	caps, err := capabilities(cfg)
	if err != nil {
		return nil, err
	}
	if err := chartutil.ProcessDependencies(chrt, vals); err != nil {
		return nil, fmt.Errorf("chart dependencies processing failed: %w", err)
	}
	if kv := chrt.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", kv, caps.KubeVersion.Version)
	}
	toRender, err := util.ToRenderValuesWithSchemaValidation(chrt, vals, release, caps, cfg.SkipSchemaValidation)
	if err != nil {
		return nil, err
	}
	var eng engine.Engine
	files, err := eng.RenderWithContext(context.Background(), chrt, toRender)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}

	// What `helm template --include-crds --skip-tests` prints, in its order.
	var text strings.Builder
	if cfg.IncludeCRDs == nil || *cfg.IncludeCRDs {
		for _, crd := range chrt.CRDObjects() {
			fmt.Fprintf(&text, "---\n# Source: %s\n%s\n", crd.Filename, crd.File.Data)
		}
	}
	for _, m := range manifests {
		fmt.Fprintf(&text, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	if cfg.Hooks != "exclude" {
		for _, hook := range hooks {
			if !slices.Contains(hook.Events, releasev1.HookTest) {
				fmt.Fprintf(&text, "---\n# Source: %s\n%s\n", hook.Path, hook.Manifest)
			}
		}
	}
	return objects(text.String(), chartDir)
}

// mergeValues: the values files in order, then the inline values, each merged over what
// came before, as `helm template -f A -f B` and Flux's inline values do.
func mergeValues(cfg Config) (map[string]any, error) {
	vals := map[string]any{}
	for _, file := range cfg.Values {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", file, err)
		}
		current := map[string]any{}
		if err := sigsyaml.Unmarshal(data, &current); err != nil {
			return nil, fmt.Errorf("values file %s: %w", file, err)
		}
		vals = loader.MergeMaps(vals, current)
	}
	return loader.MergeMaps(vals, cfg.Set), nil
}

// capabilities: Helm's defaults, with the cluster's version and API versions as the host
// (or the config) gives them, as `helm template --kube-version --api-versions` makes them.
func capabilities(cfg Config) (*common.Capabilities, error) {
	caps := common.DefaultCapabilities.Copy()
	if v := firstOf(cfg.KubeVersion, os.Getenv("MOOR_KUBE_VERSION")); v != "" {
		kubeVersion, err := common.ParseKubeVersion(v)
		if err != nil {
			return nil, fmt.Errorf("invalid kube version %q: %w", v, err)
		}
		caps.KubeVersion = *kubeVersion
	}
	apiVersions := cfg.APIVersions
	if host := os.Getenv("MOOR_API_VERSIONS"); host != "" && len(apiVersions) == 0 {
		apiVersions = strings.Split(host, ",")
	}
	caps.APIVersions = append(caps.APIVersions, apiVersions...)
	return caps, nil
}

// checkDependencies: every dependency Chart.yaml names is in charts/, as Helm checks
// before it renders.
func checkDependencies(chrt *chart.Chart) error {
	var missing []string
	for _, dep := range chrt.Metadata.Dependencies {
		found := slices.ContainsFunc(chrt.Dependencies(), func(c *chart.Chart) bool { return c.Name() == dep.Name })
		if !found {
			missing = append(missing, dep.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("found in Chart.yaml, but missing in charts/ directory: %s", strings.Join(missing, ", "))
	}
	return nil
}

var separator = regexp.MustCompile(`(?m)^---[ \t]*$`)
var source = regexp.MustCompile(`(?m)^# Source: (.+)$`)

// objects splits Helm's output into objects, each annotated with its template's path
// relative to the working directory. Values are read as kubectl reads them (YAML 1.1 via
// sigs.k8s.io/yaml: `0755` is an octal number).
func objects(text, chartDir string) ([]map[string]any, error) {
	var items []map[string]any
	perFile := map[string]int{}
	for _, doc := range separator.Split(text, -1) {
		file := ""
		if m := source.FindStringSubmatch(doc); m != nil {
			file = inChart(chartDir, strings.TrimSpace(m[1]))
		}
		var object map[string]any
		if err := sigsyaml.Unmarshal([]byte(doc), &object); err != nil {
			return nil, fmt.Errorf("%s: the template's output is not YAML: %w", orUnknown(file), err)
		}
		if len(object) == 0 {
			continue
		}
		if file != "" {
			metadata, _ := object["metadata"].(map[string]any)
			if metadata == nil {
				metadata = map[string]any{}
				object["metadata"] = metadata
			}
			annotations, _ := metadata["annotations"].(map[string]any)
			if annotations == nil {
				annotations = map[string]any{}
				metadata["annotations"] = annotations
			}
			annotations[pathAnnotation] = file
			annotations[indexAnnotation] = strconv.Itoa(perFile[file])
			perFile[file]++
		}
		items = append(items, object)
	}
	return items, nil
}

func orUnknown(file string) string {
	if file == "" {
		return "(unknown template)"
	}
	return file
}

// inChart maps a template name (`podinfo/templates/x.yaml`, `podinfo/charts/sub/…`: the
// chart's name first) to a path relative to the working directory.
func inChart(chartDir, name string) string {
	_, rest, found := strings.Cut(name, "/")
	if !found {
		return name
	}
	if strings.HasSuffix(strings.ToLower(chartDir), ".tgz") || strings.HasSuffix(strings.ToLower(chartDir), ".tar.gz") {
		return chartDir
	}
	return path.Clean(filepath.ToSlash(filepath.Join(chartDir, rest)))
}

// Template errors name their place as `(chart/templates/x.yaml:LINE:COL)` or
// `(chart/templates/x.yaml:LINE)`.
var place = regexp.MustCompile(`\(([^():\s]+):(\d+)(?::\d+)?\)`)

// diagnose turns an error into a result, with the template's file (relative to the working
// directory) and line when it names one.
func diagnose(err error, chartDir string) result {
	r := result{Message: err.Error(), Severity: "error"}
	if m := place.FindStringSubmatch(r.Message); m != nil {
		line, _ := strconv.Atoi(m[2])
		r.File = &resultFile{Path: inChart(chartDir, m[1]), Line: line}
	}
	return r
}

// defaultChart: the working directory when it is a chart, else the one chart archive in it
// (what a Helm repository source puts in its snapshot).
func defaultChart() (string, error) {
	if _, err := os.Stat("Chart.yaml"); err == nil {
		return ".", nil
	}
	archives, _ := filepath.Glob("*.tgz")
	switch len(archives) {
	case 0:
		return ".", nil
	case 1:
		return archives[0], nil
	default:
		return "", fmt.Errorf("the directory holds several chart archives (%s): name one with `chart`", strings.Join(archives, ", "))
	}
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
