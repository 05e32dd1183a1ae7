//! Waiting for dependencies (KE-1, KE-2, KE-4): `moor wait` and a pipeline's `wait_for`
//! gate. Each dependency is followed by its own task on a watch (never by polling the API):
//! every list and change is checked by [`check`]'s pure rules and published as a
//! [`Verdict`]. A [`Gate`] holds those verdicts: what still does not hold, and why.
//!
//! Files and sockets are not in the API: they are looked at every half second.

pub mod check;
pub mod env;
pub mod spec;
pub mod template;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt, future};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DynamicObject, GroupVersionKind, ResourceExt};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

pub use check::Verdict;
pub use spec::Dependency;
use spec::{Jobs, Named};

/// Whose point of view node- and pod-relative dependencies are checked from.
#[derive(Debug, Clone)]
pub enum Viewpoint {
    /// `moor wait` in a pod (`POD_NAME`, `NAMESPACE`): a DaemonSet's pod on this node, a
    /// container of this pod, pods on this node.
    Pod { namespace: String, name: Option<String> },
    /// A pipeline's gate: there is no pod of its own; a DaemonSet must be rolled out.
    Pipeline,
}

/// What does not hold yet, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub what: String,
    pub why: String,
}

impl std::fmt::Display for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.what, self.why)
    }
}

/// The dependencies that did not hold in time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {} waiting for {}", humantime::format_duration(*after), list(pending))]
pub struct TimedOut {
    pub after: Duration,
    pub pending: Vec<Pending>,
}

/// `a (why), b (why)`.
pub fn list(pending: &[Pending]) -> String {
    pending.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The verdicts of a set of dependencies, each kept current by its own task; dropping the
/// gate stops them.
#[derive(Debug)]
pub struct Gate {
    verdicts: Vec<(String, watch::Receiver<Verdict>)>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::AbortHandle::abort);
    }
}

impl Gate {
    /// Starts following `deps` (on the current tokio runtime). Without a client only files
    /// (`socket`) can hold.
    pub fn start(client: Option<&kube::Client>, deps: &[Dependency], from: &Viewpoint) -> Gate {
        let mut gate = Gate { verdicts: Vec::new(), tasks: Vec::new() };
        for dep in deps {
            let (tx, rx) = watch::channel(Err("not checked yet".to_owned()));
            let task = tokio::spawn(follow(client.cloned(), dep.clone(), from.clone(), tx));
            gate.verdicts.push((dep.to_string(), rx));
            gate.tasks.push(task.abort_handle());
        }
        gate
    }

    /// What does not hold now, in the order given.
    pub fn pending(&self) -> Vec<Pending> {
        self.verdicts
            .iter()
            .filter_map(|(what, rx)| rx.borrow().clone().err().map(|why| Pending { what: what.clone(), why }))
            .collect()
    }

    /// Calls `wake` after every change of a verdict, until the gate is dropped.
    pub fn on_change(&mut self, wake: impl Fn() + Send + 'static) {
        let mut receivers: Vec<_> = self.verdicts.iter().map(|(_, rx)| rx.clone()).collect();
        let task = tokio::spawn(async move {
            while changed(&mut receivers).await {
                wake();
            }
        });
        self.tasks.push(task.abort_handle());
    }

    /// Waits until every dependency holds, logging what it still waits for when that
    /// changes and every `every`; after `timeout` (if any), names what did not hold.
    pub async fn wait(&self, timeout: Option<Duration>, every: Duration) -> Result<(), TimedOut> {
        let deadline = async {
            match timeout {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        let mut deadline = std::pin::pin!(deadline);
        let mut receivers: Vec<_> = self.verdicts.iter().map(|(_, rx)| rx.clone()).collect();
        let mut said = None;
        let mut next_say = tokio::time::Instant::now();
        loop {
            let pending = self.pending();
            if pending.is_empty() {
                tracing::info!("every dependency holds");
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if said.as_ref() != Some(&pending) || now >= next_say {
                tracing::info!("waiting for {}", list(&pending));
                next_say = now + every;
                said = Some(pending.clone());
            }
            tokio::select! {
                more = changed(&mut receivers) => if !more {
                    // Nothing can change any more: what holds now is all there will be.
                    (&mut deadline).await;
                    return Err(TimedOut { after: timeout.unwrap_or_default(), pending: self.pending() });
                },
                _ = tokio::time::sleep_until(next_say) => {}
                _ = &mut deadline => {
                    return Err(TimedOut { after: timeout.unwrap_or_default(), pending: self.pending() });
                }
            }
        }
    }
}

/// Waits for a change of any verdict; false when none can change any more (their tasks
/// ended), and those are dropped.
async fn changed(receivers: &mut Vec<watch::Receiver<Verdict>>) -> bool {
    while !receivers.is_empty() {
        let (result, index, rest) = future::select_all(receivers.iter_mut().map(|rx| Box::pin(rx.changed()))).await;
        drop(rest);
        if result.is_ok() {
            return true;
        }
        receivers.swap_remove(index);
    }
    false
}

/// Publishes `verdict` when it differs from the last one.
fn publish(tx: &watch::Sender<Verdict>, verdict: Verdict) {
    tx.send_if_modified(|v| {
        let new = *v != verdict;
        *v = verdict;
        new
    });
}

/// Follows one dependency for as long as the gate lives.
async fn follow(client: Option<kube::Client>, dep: Dependency, from: Viewpoint, tx: watch::Sender<Verdict>) {
    if let Dependency::Socket(path) = &dep {
        loop {
            publish(&tx, check::socket(path));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let Some(client) = client else {
        return publish(&tx, Err("there is no cluster to look in (no kubeconfig)".into()));
    };
    let me = match &from {
        Viewpoint::Pod { namespace, name: Some(name) } => {
            Some(Named { namespace: namespace.clone(), name: name.clone() })
        }
        _ => None,
    };
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    match dep {
        Dependency::Service(svc) => {
            let api = Api::<EndpointSlice>::namespaced(client, &svc.namespace);
            let config = watcher::Config::default().labels(&format!("kubernetes.io/service-name={}", svc.name));
            judge(snapshots(api, config), &tx, check::service).await;
        }
        Dependency::Job(Jobs::Named(job)) => {
            let api = Api::<Job>::namespaced(client, &job.namespace);
            judge(snapshots(api, by_name(&job.name)), &tx, check::jobs).await;
        }
        Dependency::Job(Jobs::Labelled { namespace, labels }) => {
            let api = Api::<Job>::namespaced(client, &namespace);
            judge(snapshots(api, watcher::Config::default().labels(&labels.selector())), &tx, check::jobs).await;
        }
        Dependency::Pod { namespace, labels, same_node } => {
            let node = match (same_node, &me) {
                (true, Some(me)) => Some(node_of(&client, me, &tx).await),
                (true, None) => return publish(&tx, Err("needs POD_NAME, this pod's name".into())),
                (false, _) => None,
            };
            let api = Api::<Pod>::namespaced(client, &namespace);
            let config = watcher::Config::default().labels(&labels.selector());
            judge(snapshots(api, config), &tx, |pods| check::pods(pods, node.as_deref())).await;
        }
        Dependency::DaemonSet(ds) => {
            let daemonsets = snapshots(Api::<DaemonSet>::namespaced(client.clone(), &ds.namespace), by_name(&ds.name));
            match (&from, &me) {
                (Viewpoint::Pipeline, _) => judge(daemonsets, &tx, |d| check::daemonset_rolled_out(d.first())).await,
                (Viewpoint::Pod { .. }, None) => publish(&tx, Err("needs POD_NAME, this pod's name".into())),
                (Viewpoint::Pod { .. }, Some(me)) => {
                    let node = node_of(&client, me, &tx).await;
                    let on_node = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
                    let pods = snapshots(Api::<Pod>::namespaced(client, &ds.namespace), on_node);
                    judge_both(daemonsets, pods, &tx, |d, pods| check::daemonset_here(d.first(), pods, &node)).await;
                }
            }
        }
        Dependency::Container(name) => {
            let Some(me) = me else { return publish(&tx, Err("needs POD_NAME, this pod's name".into())) };
            let api = Api::<Pod>::namespaced(client, &me.namespace);
            judge(snapshots(api, by_name(&me.name)), &tx, |p| check::container(p.first(), &name)).await;
        }
        Dependency::Socket(_) => unreachable!("followed above"),
        Dependency::CustomResource(cr) => {
            let api = custom_api(&client, &cr, &tx).await;
            judge(snapshots(api, by_name(&cr.name)), &tx, |objects| {
                let object = objects.first().map(|o| serde_json::to_value(o).unwrap_or_default());
                check::fields(object.as_ref(), &cr.fields)
            })
            .await;
        }
    }
}

/// Publishes a verdict on every snapshot of one watch.
async fn judge<K>(
    snapshots: impl Stream<Item = Result<Vec<K>, watcher::Error>>,
    tx: &watch::Sender<Verdict>,
    rule: impl Fn(&[K]) -> Verdict,
) {
    let mut snapshots = std::pin::pin!(snapshots);
    while let Some(snapshot) = snapshots.next().await {
        publish(tx, snapshot.map_err(|e| format!("cannot watch: {e}")).and_then(|objects| rule(&objects)));
    }
}

/// Publishes a verdict on every snapshot of either of two watches, once both have one.
async fn judge_both<A, B>(
    a: impl Stream<Item = Result<Vec<A>, watcher::Error>>,
    b: impl Stream<Item = Result<Vec<B>, watcher::Error>>,
    tx: &watch::Sender<Verdict>,
    rule: impl Fn(&[A], &[B]) -> Verdict,
) {
    enum Either<A, B> {
        A(A),
        B(B),
    }
    let merged = futures::stream::select(a.map(Either::A), b.map(Either::B));
    let mut merged = std::pin::pin!(merged);
    let (mut last_a, mut last_b) = (None, None);
    while let Some(item) = merged.next().await {
        let failed = match item {
            Either::A(Ok(a)) => (last_a = Some(a), None).1,
            Either::B(Ok(b)) => (last_b = Some(b), None).1,
            Either::A(Err(e)) | Either::B(Err(e)) => Some(format!("cannot watch: {e}")),
        };
        match (failed, &last_a, &last_b) {
            (Some(why), _, _) => publish(tx, Err(why)),
            (None, Some(a), Some(b)) => publish(tx, rule(a, b)),
            _ => {}
        }
    }
}

/// The objects one watch sees: the whole set after the initial list and after each change.
pub(crate) fn snapshots<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = Result<Vec<K>, watcher::Error>>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    let mut live = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, K>> = None;
    watcher(api, config).default_backoff().filter_map(move |event| {
        let snapshot = match event {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Init) => {
                listing = Some(BTreeMap::new());
                None
            }
            Ok(watcher::Event::InitApply(o)) => {
                listing.get_or_insert_default().insert(key(&o), o);
                None
            }
            Ok(watcher::Event::InitDone) => {
                live = listing.take().unwrap_or_default();
                Some(Ok(live.values().cloned().collect()))
            }
            Ok(watcher::Event::Apply(o)) => {
                live.insert(key(&o), o);
                Some(Ok(live.values().cloned().collect()))
            }
            Ok(watcher::Event::Delete(o)) => {
                live.remove(&key(&o));
                Some(Ok(live.values().cloned().collect()))
            }
        };
        future::ready(snapshot)
    })
}

/// Retries `attempt` with backoff (up to 5 s apart), publishing why it failed meanwhile.
async fn retrying<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    tx: &watch::Sender<Verdict>,
    what: &str,
    attempt: impl Fn() -> F,
) -> T {
    use backon::BackoffBuilder;
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .build();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) => publish(tx, Err(format!("{what}: {e}"))),
        }
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
    }
}

/// The node this pod runs on.
async fn node_of(client: &kube::Client, me: &Named, tx: &watch::Sender<Verdict>) -> String {
    let api = Api::<Pod>::namespaced(client.clone(), &me.namespace);
    retrying(tx, &format!("cannot read this pod {me}"), || async {
        let pod = api.get(&me.name).await.map_err(|e| e.to_string())?;
        pod.spec.and_then(|s| s.node_name).ok_or_else(|| "it is not scheduled on a node".to_owned())
    })
    .await
}

/// The API of a custom resource's kind, once the cluster serves it (its CRD may come later).
async fn custom_api(
    client: &kube::Client,
    cr: &spec::CustomResource,
    tx: &watch::Sender<Verdict>,
) -> Api<DynamicObject> {
    let (group, version) = cr.api_version.rsplit_once('/').unwrap_or(("", &cr.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &cr.kind);
    let what = format!("the cluster does not serve kind {} of {}", cr.kind, cr.api_version);
    let (resource, caps) = retrying(tx, &what, || kube::discovery::pinned_kind(client, &gvk)).await;
    match caps.scope {
        kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
        kube::discovery::Scope::Namespaced => Api::namespaced_with(client.clone(), &cr.namespace, &resource),
    }
}
