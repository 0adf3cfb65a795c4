//! The registry sees every built-in plugin crate: catches the linker dropping one.

use rossl::commands::plugins::listings;
use rossl::rossl_api::registry::{check_duplicates, Kind};

#[test]
fn every_built_in_plugin_crate_is_linked() {
    // the linker drops a crate that nothing names, and its registrations with it: each built-in
    // plugin crate must show at least one registration (adding a component to a crate needs no
    // change here)
    let crates: Vec<String> = Kind::ALL
        .iter()
        .flat_map(|kind| kind.entries())
        .map(|entry| {
            entry
                .location
                .module
                .split("::")
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for krate in rossl::BUILTIN_PLUGIN_CRATES {
        assert!(
            crates.iter().any(|c| c == krate),
            "no registration from `{krate}`: is it named in src/lib.rs? (found {crates:?})"
        );
    }
    // and every kind has components
    for kind in Kind::ALL {
        assert!(!kind.names().is_empty(), "no {kind} registered");
    }
}

#[test]
fn no_two_components_of_a_kind_share_a_name() {
    check_duplicates().expect("duplicate registrations");
}

#[test]
fn listings_carry_kind_name_summary_and_defaults() {
    let all = listings(None).unwrap();
    let json = serde_json::to_value(&all).unwrap();
    let items = json.as_array().unwrap();
    assert!(items.len() >= 21);
    for item in items {
        for key in ["kind", "name", "summary", "defaults"] {
            assert!(item.get(key).is_some(), "listing without `{key}`: {item}");
        }
        assert!(!item["summary"].as_str().unwrap().is_empty());
    }
    let tcr = items.iter().find(|i| i["name"] == "tcr").unwrap();
    assert_eq!(tcr["kind"], "loss");
    assert_eq!(tcr["defaults"]["eps"], 0.2);
    let only_attacks = listings(Some(Kind::Attack)).unwrap();
    assert!(only_attacks.iter().all(|l| l.kind == Kind::Attack));
}

// This test executable declares itself a plugin, so that it carries this rossl's own ABI stamp
// and passes the stamp check: what is left to refuse it is that the host is static.
rossl::rossl_api::declare_plugin!();

#[test]
fn a_static_host_refuses_a_plugin_whose_stamp_matches_and_says_how_to_rebuild() {
    assert!(!rossl::rossl_runtime::plugins::host_is_dynamic());
    let exe = std::env::current_exe().unwrap();
    let message = rossl::rossl_runtime::plugins::load(&exe)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("without dynamic plugin support")
            && message.contains("--features dynamic")
            && message.contains(&exe.canonicalize().unwrap().display().to_string()),
        "{message}"
    );
}
