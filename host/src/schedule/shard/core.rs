//! The pure core of sharding: who owns a pipeline, and when its owner may run it.
//!
//! Ownership is rendezvous hashing (highest random weight) of a pipeline's shard key over
//! the live members, so a join or a leave moves only the pipelines the member takes or
//! leaves. Exclusivity is a handshake on the members' own Leases: each member publishes
//! the view (the members it sees) that it acts on, and a member runs a pipeline only when
//! it owns it in its own view and no other live member's published view gives it to that
//! member. A member stops what it no longer owns before it publishes a new view.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// What a member may be given to do: the pipelines of one shard key ([`keys`]), or the
/// removal of the pipelines gone from the config, which one member does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work<'a> {
    Pipelines(&'a str),
    Removals,
}

impl Work<'_> {
    /// The bytes hashed for it. A shard key hashes as itself; the removals as a name no
    /// shard key can be, since pipeline names cannot hold `:`. Members of two releases
    /// must agree on these, or both would run one pipeline during a rolling update.
    fn hashed(&self) -> &str {
        match self {
            Work::Pipelines(key) => key,
            Work::Removals => "moor:removals",
        }
    }
}

/// What a member acts on, as its Lease publishes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The live members it sees, itself included, sorted.
    pub members: Vec<String>,
    /// Digest of the config's shard keys ([`keys_digest`]): members whose configs group
    /// pipelines differently run nothing until they agree.
    pub keys: String,
}

/// Another live member and the view it published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub identity: String,
    pub view: View,
}

/// What this member knows of the shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    pub me: String,
    /// The view this member acts on (and has published, or is about to).
    pub mine: View,
    /// The other live members.
    pub others: Vec<Member>,
    /// A lease duration has passed since its first publication: a member that has just
    /// started runs nothing, so replicas started together do not all run everything first.
    pub settled: bool,
}

/// The member of `members` that owns `work`: the highest `sha256(member, work)`.
pub fn rendezvous<'a>(work: Work<'_>, members: &'a [String]) -> Option<&'a str> {
    members.iter().max_by_key(|m| weight(m, work.hashed())).map(String::as_str)
}

fn weight(member: &str, key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(member.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.finalize().into()
}

/// Where something keyed runs, from this member's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Here, now.
    Here,
    /// Here once the other members' published views let it go.
    Arriving,
    /// On the member named.
    Elsewhere(String),
}

impl Membership {
    /// Where `work` runs.
    pub fn place(&self, work: Work<'_>) -> Placement {
        match self.owner(work) {
            Some(owner) if owner != self.me => Placement::Elsewhere(owner.to_owned()),
            _ if self.may_run(work) => Placement::Here,
            _ => Placement::Arriving,
        }
    }

    /// The owner of `work` in this member's view.
    pub fn owner(&self, work: Work<'_>) -> Option<&str> {
        rendezvous(work, &self.mine.members)
    }

    /// Whether this member may do `work` now.
    pub fn may_run(&self, work: Work<'_>) -> bool {
        self.settled
            && self.owner(work) == Some(self.me.as_str())
            && self.others.iter().all(|m| {
                m.view.keys == self.mine.keys && rendezvous(work, &m.view.members) != Some(m.identity.as_str())
            })
    }

    /// The view to act on, given the other live members now seen and the config's keys.
    pub fn next_view(&self, others: &[Member], keys: &str) -> View {
        let mut members: Vec<String> = others.iter().map(|m| m.identity.clone()).collect();
        members.push(self.me.clone());
        members.sort();
        members.dedup();
        View { members, keys: keys.to_owned() }
    }
}

/// Each pipeline's shard key: the first name (in order) of the pipelines it is joined to
/// through `depends_on`, so that a dependency and its dependents run on one member, where
/// their gates can see each other.
pub fn keys(config: &Config) -> BTreeMap<String, String> {
    let names: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
    let mut parent: BTreeMap<&str, &str> = names.iter().map(|n| (*n, *n)).collect();
    fn root<'a>(parent: &BTreeMap<&'a str, &'a str>, mut n: &'a str) -> &'a str {
        while let Some(&p) = parent.get(n).filter(|p| **p != n) {
            n = p;
        }
        n
    }
    for p in &config.pipelines {
        for dep in p.depends_on.iter().map(String::as_str) {
            if !parent.contains_key(dep) {
                continue;
            }
            let (a, b) = (root(&parent, &p.name), root(&parent, dep));
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            parent.insert(high, low);
        }
    }
    names.iter().map(|n| (n.to_string(), root(&parent, n).to_owned())).collect()
}

/// A digest of the keys that are not the pipeline's own name (the grouped pipelines):
/// pipelines on their own never change it.
pub fn keys_digest(keys: &BTreeMap<String, String>) -> String {
    let grouped: BTreeSet<(&String, &String)> = keys.iter().filter(|(n, k)| n != k).collect();
    let mut h = Sha256::new();
    for (name, key) in grouped {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        h.update([0]);
    }
    let digest: [u8; 32] = h.finalize().into();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn member(identity: &str, view: &[&str]) -> Member {
        Member { identity: identity.into(), view: View { members: names(view), keys: String::new() } }
    }

    fn membership(me: &str, view: &[&str], others: Vec<Member>) -> Membership {
        Membership { me: me.into(), mine: View { members: names(view), keys: String::new() }, others, settled: true }
    }

    #[test]
    fn rendezvous_moves_only_what_a_joining_member_takes() {
        let keys: Vec<String> = (0..1000).map(|i| format!("pipeline-{i}")).collect();
        let two = names(&["a", "b"]);
        let three = names(&["a", "b", "c"]);
        let mut moved = 0;
        let mut shares = BTreeMap::new();
        for k in &keys {
            let (before, after) =
                (rendezvous(Work::Pipelines(k), &two).unwrap(), rendezvous(Work::Pipelines(k), &three).unwrap());
            *shares.entry(after).or_insert(0) += 1;
            if before != after {
                assert_eq!(after, "c", "a key moves only to the new member");
                moved += 1;
            }
        }
        assert!((250..420).contains(&moved), "about a third moves: {moved}");
        assert!(shares.values().all(|n| (250..420).contains(n)), "{shares:?}");
        assert_eq!(rendezvous(Work::Pipelines("x"), &[]), None);
    }

    #[test]
    fn owners_are_the_same_in_every_release() {
        // Members of two releases run side by side during a rolling update: should they
        // place work differently, both would run it. These owners were computed with
        // `sha256(member || 0 || key)` outside this code; a change here breaks upgrades.
        let members = names(&["a", "b", "c"]);
        for (key, owner) in [("web", "c"), ("db", "a"), ("app-0001", "b")] {
            assert_eq!(rendezvous(Work::Pipelines(key), &members), Some(owner), "{key}");
        }
        assert_eq!(rendezvous(Work::Removals, &names(&["a", "b", "c", "d", "e"])), Some("c"));
    }

    #[test]
    fn a_member_runs_a_key_only_when_no_other_view_gives_it_to_its_holder() {
        // `c` joined: it sees a, b, c; `a` has not seen `c` yet.
        let all = ["a", "b", "c"];
        let key =
            (0..).map(|i| format!("k{i}")).find(|k| rendezvous(Work::Pipelines(k), &names(&all)) == Some("c")).unwrap();
        let before = rendezvous(Work::Pipelines(&key), &names(&["a", "b"])).unwrap().to_owned();
        let others_seen = |a_view: &[&str]| vec![member("a", a_view), member("b", &all)];
        let c = membership("c", &all, others_seen(&["a", "b"]));
        assert_eq!(
            c.may_run(Work::Pipelines(&key)),
            before != "a",
            "waits while `a`'s view may still give `a` the key"
        );
        assert_eq!(c.place(Work::Pipelines(&key)), if before == "a" { Placement::Arriving } else { Placement::Here });
        let c = membership("c", &all, others_seen(&all));
        assert!(c.may_run(Work::Pipelines(&key)), "once every view agrees, the new owner runs it");
        assert_eq!(c.place(Work::Pipelines(&key)), Placement::Here);
        // The old owner, having seen `c`, no longer runs it.
        let old = membership(&before, &all, vec![member("c", &all)]);
        assert!(!old.may_run(Work::Pipelines(&key)));
        assert_eq!(old.place(Work::Pipelines(&key)), Placement::Elsewhere("c".into()));
    }

    #[test]
    fn nothing_runs_before_settling_or_while_configs_disagree() {
        let solo = Membership { settled: false, ..membership("a", &["a"], Vec::new()) };
        assert!(!solo.may_run(Work::Pipelines("anything")));
        let agreed = membership("a", &["a", "b"], vec![member("b", &["a", "b"])]);
        let key = (0..).map(|i| format!("k{i}")).find(|k| agreed.owner(Work::Pipelines(k)) == Some("a")).unwrap();
        assert!(agreed.may_run(Work::Pipelines(&key)));
        let mut other = member("b", &["a", "b"]);
        other.view.keys = "different".into();
        assert!(!Membership { others: vec![other], ..agreed }.may_run(Work::Pipelines(&key)));
    }

    #[test]
    fn pipelines_joined_by_depends_on_share_a_key() {
        let config = Config::parse(
            std::path::Path::new("moor.toml"),
            r#"
[[source]]
name = "s"
path = "."

[[pipeline]]
name = "web"
source = "s"
depends_on = ["db"]

[[pipeline]]
name = "db"
source = "s"
depends_on = ["crds"]

[[pipeline]]
name = "crds"
source = "s"

[[pipeline]]
name = "alone"
source = "s"
"#
            .into(),
            &["yaml"],
        )
        .unwrap();
        let keys = keys(&config);
        assert_eq!(keys["web"], "crds");
        assert_eq!(keys["db"], "crds");
        assert_eq!(keys["crds"], "crds");
        assert_eq!(keys["alone"], "alone");
        let mut more = keys.clone();
        more.insert("another".into(), "another".into());
        assert_eq!(keys_digest(&keys), keys_digest(&more), "a pipeline on its own changes nothing");
        more.insert("another".into(), "crds".into());
        assert_ne!(keys_digest(&keys), keys_digest(&more));
    }

    #[test]
    fn the_next_view_is_every_live_member_sorted() {
        let m = membership("b", &["b"], Vec::new());
        let view = m.next_view(&[member("c", &[]), member("a", &[])], "d");
        assert_eq!(view, View { members: names(&["a", "b", "c"]), keys: "d".into() });
    }
}
