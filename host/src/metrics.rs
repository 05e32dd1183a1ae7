//! Prometheus metrics of controller mode, through prometheus-client; served at `/metrics`.

use prometheus_client::encoding::{EncodeLabel as _, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    #[prometheus(flatten)]
    pub pipeline: PipelineLabels,
    /// `success` or `failure`.
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    #[prometheus(flatten)]
    pub pipeline: PipelineLabels,
    /// created, configured, unchanged, recreated, pruned, ignored.
    pub action: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabels {
    #[prometheus(flatten)]
    pub pipeline: PipelineLabels,
    pub file: String,
    /// `success` or `failure` (KA-7).
    pub result: String,
}

/// A pipeline's labels: `pipeline`, and `tenant` for a tenant's (`team-a/web`: tenant
/// `team-a`); the platform's own pipelines have no `tenant` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct PipelineLabels {
    pub pipeline: String,
    pub tenant: String,
}

impl PipelineLabels {
    pub fn of(pipeline: &str) -> PipelineLabels {
        PipelineLabels { pipeline: pipeline.to_owned(), tenant: crate::config::tenant_of(pipeline).to_owned() }
    }
}

impl EncodeLabelSet for PipelineLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("pipeline", self.pipeline.as_str()).encode(encoder.encode_label())?;
        if !self.tenant.is_empty() {
            ("tenant", self.tenant.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    #[prometheus(flatten)]
    pub pipeline: PipelineLabels,
    /// discovered, applied, unchanged, pruned, ignored, in_sync (FA-9).
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    #[prometheus(flatten)]
    pub pipeline: PipelineLabels,
    pub trigger: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric moor exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub run_duration: Histograms<RunLabels>,
    pub objects: Family<ActionLabels, Counter>,
    pub file_applies: Family<FileLabels, Counter>,
    pub plugin_calls: Histograms<PluginLabels>,
    pub time_to_deploy: Histograms<PipelineLabels>,
    pub pipeline_objects: Family<StateLabels, Gauge>,
    pub triggers: Family<TriggerLabels, Counter>,
    pub notifications_dropped: Family<PipelineLabels, Counter>,
    pub queue_depth: Gauge,
    pub running: Gauge,
    pub leader: Gauge,
    /// Sharded (`moor run --shard`): the live members this one sees, and the pipelines it owns.
    pub shard_members: Gauge,
    pub shard_pipelines: Gauge,
    /// Requests sent to the apiserver, by verb (the target's counters).
    pub kube_requests: crate::apply::requests::Requests,
}

fn run_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_02, 4.0, 12))
}

fn deploy_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.25, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None, &Default::default())
    }
}

impl Metrics {
    /// Every metric; a member of a shard labels them all `shard="<identity>"`. `requests`
    /// are the target's counters of apiserver requests.
    pub fn new(shard: Option<&str>, requests: &crate::apply::requests::Requests) -> Self {
        let labels = shard.map(|s| (std::borrow::Cow::Borrowed("shard"), std::borrow::Cow::Owned(s.to_owned())));
        let mut registry = Registry::with_prefix_and_labels("moor", labels.into_iter());
        let run_duration: Histograms<RunLabels> = Family::new_with_constructor(run_buckets);
        let objects = Family::<ActionLabels, Counter>::default();
        let file_applies = Family::<FileLabels, Counter>::default();
        let plugin_calls: Histograms<PluginLabels> = Family::new_with_constructor(call_buckets);
        let time_to_deploy: Histograms<PipelineLabels> = Family::new_with_constructor(deploy_buckets);
        let pipeline_objects = Family::<StateLabels, Gauge>::default();
        let triggers = Family::<TriggerLabels, Counter>::default();
        let notifications_dropped = Family::<PipelineLabels, Counter>::default();
        let queue_depth = Gauge::default();
        let running = Gauge::default();
        let leader = Gauge::default();
        let shard_members = Gauge::default();
        let shard_pipelines = Gauge::default();
        registry.register("run_duration_seconds", "Pipeline run latency by result", run_duration.clone());
        registry.register("objects", "Objects handled by runs, by action", objects.clone());
        registry.register("file_applies", "Objects applied per source file, by result", file_applies.clone());
        registry.register("plugin_call_duration_seconds", "Plugin call latency", plugin_calls.clone());
        registry.register(
            "time_to_deploy_seconds",
            "From a new revision seen to it being applied and healthy",
            time_to_deploy.clone(),
        );
        registry.register("pipeline_objects", "Objects of the last run, by state", pipeline_objects.clone());
        registry.register("triggers", "Run requests, by trigger", triggers.clone());
        registry.register(
            "notifications_dropped",
            "Notifications dropped as duplicates or over the rate limit",
            notifications_dropped.clone(),
        );
        registry.register("queue_depth", "Pipelines due or queued but not running", queue_depth.clone());
        registry.register("runs_in_progress", "Pipeline runs in progress", running.clone());
        registry.register("leader", "1 when this instance holds the lease", leader.clone());
        registry.register("kube_requests", "Requests sent to the Kubernetes apiserver, by verb", requests.clone());
        if shard.is_some() {
            registry.register("shard_members", "Live members of the shard this one sees", shard_members.clone());
            registry.register("shard_pipelines", "Pipelines this member of the shard owns", shard_pipelines.clone());
        }
        Metrics {
            registry,
            run_duration,
            objects,
            file_applies,
            plugin_calls,
            time_to_deploy,
            pipeline_objects,
            triggers,
            notifications_dropped,
            queue_depth,
            running,
            leader,
            shard_members,
            shard_pipelines,
            kube_requests: requests.clone(),
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_pipeline_is_labelled_with_its_tenant_and_the_platforms_own_are_not() {
        let metrics = Metrics::default();
        for pipeline in ["team-a/web", "ingress"] {
            let labels = TriggerLabels { pipeline: PipelineLabels::of(pipeline), trigger: "manual".into() };
            metrics.triggers.get_or_create(&labels).inc();
        }
        let text = metrics.encode();
        assert!(
            text.contains("moor_triggers_total{pipeline=\"team-a/web\",tenant=\"team-a\",trigger=\"manual\"} 1"),
            "{text}"
        );
        assert!(text.contains("moor_triggers_total{pipeline=\"ingress\",trigger=\"manual\"} 1"), "{text}");
    }
}
