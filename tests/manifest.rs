//! `config/slack-manifest.yml` creates the app the code needs: Socket Mode and interactivity on,
//! the events the router handles, and the scopes `itbot doctor` checks for — no more.

use std::collections::BTreeSet;

use itbot::config::Config;
use yaml_rust2::{Yaml, YamlLoader};

fn manifest() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/slack-manifest.yml");
    let text = std::fs::read_to_string(path).expect("manifest present");
    let mut docs = YamlLoader::load_from_str(&text).expect("the manifest is valid YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    docs.remove(0)
}

fn strings(y: &Yaml) -> BTreeSet<String> {
    y.as_vec().expect("a list").iter().map(|v| v.as_str().expect("a string").to_string()).collect()
}

#[test]
fn the_manifest_turns_on_socket_mode_interactivity_and_the_events_the_bot_handles() {
    let m = manifest();
    let settings = &m["settings"];

    assert_eq!(settings["socket_mode_enabled"].as_bool(), Some(true));
    assert_eq!(
        settings["interactivity"]["is_enabled"].as_bool(),
        Some(true),
        "the Get a human button needs it"
    );
    let events = strings(&settings["event_subscriptions"]["bot_events"]);
    let want: BTreeSet<String> =
        ["message.channels", "app_mention", "reaction_added"].map(String::from).into();
    assert_eq!(events, want);
}

#[test]
fn the_manifest_asks_for_exactly_the_scopes_the_code_uses() {
    let m = manifest();
    let granted = strings(&m["oauth_config"]["scopes"]["bot"]);
    // The most a configuration needs: name lookup (no IT_CHANNEL_ID) and reaction markers on.
    let mut config = Config::load(|_| None).expect("default config");
    config.settings.slack.reaction_markers = true;
    let needed: BTreeSet<String> =
        itbot::doctor::needed_scopes(&config).into_iter().map(|(s, _)| s.to_string()).collect();

    assert_eq!(granted, needed, "the manifest and the code disagree on scopes");
}

#[test]
fn every_file_the_dockerfile_copies_from_the_repository_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).expect("Dockerfile present");
    let copies: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().skip(1).collect();
            parts[..parts.len().saturating_sub(1)].to_vec()
        })
        .collect();

    assert!(copies.contains(&"Cargo.lock"), "the lock file must be copied for --locked builds");
    for path in copies {
        assert!(
            std::path::Path::new(root).join(path).exists(),
            "the Dockerfile copies {path}, which is not in the repository"
        );
    }
    // Every declared benchmark must be there before the dependency layer builds.
    let cargo = std::fs::read_to_string(format!("{root}/Cargo.toml")).expect("Cargo.toml");
    if cargo.contains("[[bench]]") {
        assert!(
            dockerfile.contains("COPY benches"),
            "declared benchmarks are not copied before the first build"
        );
    }
}

#[test]
fn railway_builds_the_dockerfile_and_checks_health() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/railway.toml")).expect("railway.toml");
    let railway: toml::Table = toml::from_str(&text).expect("valid TOML");
    assert_eq!(railway["build"]["builder"].as_str(), Some("DOCKERFILE"));
    assert_eq!(railway["deploy"]["healthcheckPath"].as_str(), Some("/healthz"));
    assert_eq!(railway["deploy"]["restartPolicyType"].as_str(), Some("ON_FAILURE"));
}
