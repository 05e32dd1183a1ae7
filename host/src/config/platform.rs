//! A bootstrap config's platform config (`[config]`): where it is, the revision it was read
//! at, and how it is parsed inside its source's snapshot.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, SourceKind, SourceSpec};

/// A bootstrap config's `[config]`, checked: the platform config is the file `path` of the
/// newest revision of a source of the bootstrap config ([`Config::platform_source`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub(super) source: usize,
    pub path: String,
}

/// The source and revision a platform config was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRevision {
    pub source: String,
    pub revision: String,
}

impl fmt::Display for ConfigRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source `{}` at {}", self.source, crate::revision::short(&self.revision))
    }
}

impl Config {
    /// Parses the platform config this bootstrap config points at (`[config]`): `text`, the
    /// file at `place.path` of the source's snapshot in `root`, taken at `revision`. Its
    /// relative paths resolve inside the snapshot, its errors name the path in the source
    /// and the revision, and its instance, unless it names one, is this config's: an
    /// instance never changes with a revision, or the next one would own nothing.
    pub fn parse_platform(
        &self,
        place: &Platform,
        root: &Path,
        revision: &str,
        text: String,
        builtin: &[&str],
    ) -> Result<Config, ConfigError> {
        let file = Path::new(&place.path);
        let base = root.join(file.parent().unwrap_or(Path::new("")));
        let source = self.platform_source(place).name.clone();
        let revision = ConfigRevision { source, revision: revision.to_owned() };
        let mut config = Config::parse_at(file, base, Some((revision, &self.settings)), text, builtin)?;
        if config.platform.is_some() {
            return Err(config.error_at("config", "a config read from a source cannot point at another one"));
        }
        config.settings.file = self.settings.file.clone();
        for (i, source) in config.sources.iter().enumerate() {
            if let SourceKind::Path(path) = &source.kind
                && !lexically_inside(&config.base.join(path), root)
            {
                let message = "a config read from a source reads only paths inside that source";
                return Err(config.error_at(format!("source[{i}].path"), message));
            }
        }
        Ok(config)
    }

    /// The source a bootstrap config reads the platform config from.
    pub fn platform_source(&self, platform: &Platform) -> &SourceSpec {
        &self.sources[platform.source]
    }
}

/// Whether `path`, with its `.` and `..` taken away as written (no symlinks: a snapshot
/// has none that leave it), is `root` or under it.
pub(super) fn lexically_inside(path: &Path, root: &Path) -> bool {
    use std::path::Component;
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if !normal.pop() {
                    return false;
                }
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal.starts_with(root)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BOOTSTRAP: &str = "[moor]\ninstance = \"prod\"\n\n\
                             [config]\nsource = \"platform\"\npath = \"clusters/prod/moor.toml\"\n\n\
                             [[source]]\nname = \"platform\"\n\
                             git = { url = \"https://git.example.com/platform.git\", ref = \"main\" }\n";

    #[test]
    fn a_bootstrap_config_points_at_the_platform_config_which_keeps_its_instance_across_revisions() {
        let boot = Config::parse(Path::new("/etc/moor/moor.toml"), BOOTSTRAP.into(), &["yaml"]).unwrap();
        let place = boot.platform.clone().unwrap();
        assert_eq!(
            (boot.platform_source(&place).name.as_str(), place.path.as_str()),
            ("platform", "clusters/prod/moor.toml")
        );
        let text = "[[source]]\nname = \"apps\"\npath = \"../../apps\"\n\n\
                    [[pipeline]]\nname = \"web\"\nsource = \"apps\"\npath = \"web\"\n";
        let root = Path::new("/cache/snapshots/1a2b");
        let platform = boot.parse_platform(&place, root, "1a2b3c", text.into(), &["yaml"]).unwrap();
        assert_eq!(platform.settings.instance, "prod");
        assert_eq!(platform.revision.as_ref().unwrap().revision, "1a2b3c");
        assert_eq!(
            platform.resolve(Path::new("../../apps")),
            Path::new("/cache/snapshots/1a2b/clusters/prod/../../apps")
        );
        let other = boot.parse_platform(&place, Path::new("/cache/snapshots/9f8e"), "9f8e", text.into(), &["yaml"]);
        assert_eq!(other.unwrap().settings.instance, "prod", "a new revision is the same instance");
    }

    #[test]
    fn a_platform_config_error_names_the_source_the_revision_the_file_and_the_line() {
        let boot = Config::parse(Path::new("/etc/moor/moor.toml"), BOOTSTRAP.into(), &["yaml"]).unwrap();
        let place = boot.platform.clone().unwrap();
        let root = Path::new("/cache/snapshots/1a2b");
        let broken = "[[pipeline]]\nname = \"web\"\nsource = \"nowhere\"\n";
        let e = boot.parse_platform(&place, root, "1a2b3c4d5e6f7a8b", broken.into(), &["yaml"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "source `platform` at 1a2b3c4d5e6f: clusters/prod/moor.toml:3:10: pipeline[0].source: no source is named `nowhere`"
        );
        let e = boot.parse_platform(&place, root, "1a2b", "[moor\n".into(), &["yaml"]).unwrap_err();
        assert!(e.to_string().starts_with("source `platform` at 1a2b: clusters/prod/moor.toml:1:"), "{e}");
        let out = "[[source]]\nname = \"host\"\npath = \"../../../../etc\"\n";
        let e = boot.parse_platform(&place, root, "1a2b", out.into(), &["yaml"]).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("source[0].path", 3), "{e}");
        let again = "[config]\nsource = \"apps\"\npath = \"x.toml\"\n\n[[source]]\nname = \"apps\"\npath = \".\"\n";
        let e = boot.parse_platform(&place, root, "1a2b", again.into(), &["yaml"]).unwrap_err();
        assert!(e.to_string().contains("cannot point at another one"), "{e}");
    }

    #[test]
    fn a_path_is_inside_a_root_as_written() {
        let root = Path::new("/s/1a");
        assert!(lexically_inside(Path::new("/s/1a/clusters/prod/../../apps"), root));
        assert!(lexically_inside(Path::new("/s/1a/./apps"), root));
        assert!(lexically_inside(Path::new("/s/1a"), root));
        assert!(!lexically_inside(Path::new("/s/1a/clusters/../../1b"), root));
        assert!(!lexically_inside(Path::new("/s/1ab"), root));
        assert!(!lexically_inside(Path::new("/../../etc"), root));
    }

    #[test]
    fn a_bootstrap_config_names_a_source_of_its_own_and_runs_nothing_itself() {
        let parse = |extra: &str| Config::parse(Path::new("moor.toml"), format!("{BOOTSTRAP}{extra}"), &["yaml"]);
        assert!(parse("").is_ok());
        let e = parse("\n[[pipeline]]\nname = \"web\"\nsource = \"platform\"\n").unwrap_err();
        assert_eq!(e.key, "pipeline[0]");
        assert!(e.message.contains("goes in `clusters/prod/moor.toml` of source `platform`"), "{e}");
        let e = Config::parse(
            Path::new("moor.toml"),
            BOOTSTRAP.replace("source = \"platform\"\npath", "source = \"other\"\npath"),
            &["yaml"],
        )
        .unwrap_err();
        assert_eq!((e.key.as_str(), e.message.as_str()), ("config.source", "no source is named `other`"));
        let e = Config::parse(Path::new("moor.toml"), BOOTSTRAP.replace("clusters/prod", "../prod"), &["yaml"])
            .unwrap_err();
        assert_eq!(e.key, "config.path");
    }
}
