//! The load-test catalog: `teams` teams (`t0`, `t1`, ...) each with an
//! issue type (`it0`, ...), and `reps` reps (`r0`, ...); rep `i` is in team
//! `i % teams`, so reps `0..teams` are one per team.
use std::path::Path;

use serde::Serialize;
use switchboard::config::{Seed, SeedIssueType, SeedRep, SeedTeam, Settings};

pub fn rep_name(i: usize) -> String {
    format!("r{i}")
}

pub fn rep_password(i: usize) -> String {
    format!("load-{i}")
}

pub fn issue_type(team: usize) -> String {
    format!("it{team}")
}

/// The team rep `i` is in.
pub fn team_of_rep(i: usize, teams: usize) -> usize {
    i % teams.max(1)
}

/// Server settings for a load test: the catalog above, a data directory,
/// a free port on loopback, warnings only in the log.
pub fn settings(data_dir: &Path, teams: usize, reps: usize) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".into();
    s.store.data_dir = data_dir.to_path_buf();
    s.log.level = "warn".into();
    let teams = teams.max(1);
    for t in 0..teams {
        s.seed.teams.push(SeedTeam {
            id: format!("t{t}"),
            name: format!("Team {t}"),
        });
        s.seed.issue_types.push(SeedIssueType {
            id: issue_type(t),
            name: format!("Issue {t}"),
            team: format!("t{t}"),
        });
    }
    for i in 0..reps {
        s.seed.reps.push(SeedRep {
            id: rep_name(i),
            username: rep_name(i),
            display_name: format!("Rep {i}"),
            password: rep_password(i),
            teams: vec![format!("t{}", team_of_rep(i, teams))],
            permissions: Default::default(),
            public: false,
        });
    }
    s
}

/// Writes the catalog of `settings` as a TOML configuration file the
/// server binary reads. Only the catalog: every other key keeps the server
/// binary's own default, so a run measures the binary it was given.
/// (Writing the whole struct froze this crate's defaults into the file, and
/// an A/B run of two server builds never saw a changed default.) The
/// listen address, data directory and log level come from the environment
/// (`orchestrate::start_server`).
pub fn write_config(settings: &Settings, path: &Path) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct CatalogOnly<'a> {
        seed: &'a Seed,
    }
    let text = toml::to_string(&CatalogOnly {
        seed: &settings.seed,
    })?;
    std::fs::write(path, text)
        .map_err(|e| anyhow::anyhow!("cannot write the catalog to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_a_valid_config() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), 3, 7);
        s.validate().unwrap();
        let path = dir.path().join("c.toml");
        write_config(&s, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("[server]"),
            "the server binary's own defaults must apply: {text}"
        );
        let back = Settings::from_file(&path, true).unwrap();
        assert_eq!(back.seed.reps.len(), 7);
        assert_eq!(back.seed.reps[4].teams, vec!["t1".to_string()]);
    }
}
