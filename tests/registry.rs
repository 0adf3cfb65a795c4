//! The registry sees every built-in component: catches the linker dropping a plugin crate.

use rossl::commands::plugins::listings;
use rossl::rossl_api::registry::{check_duplicates, Kind};

#[test]
fn every_built_in_component_is_registered() {
    let expected: [(Kind, &[&str]); 6] = [
        (
            Kind::Dataset,
            &[
                "cifar10",
                "cifar100",
                "embedded",
                "fashion-mnist",
                "mnist",
                "synthetic",
            ],
        ),
        (Kind::Encoder, &["resnet-small", "resnet18-cifar"]),
        (Kind::Views, &["multi-crop", "patches", "single"]),
        (Kind::Loss, &["infonce", "invariance", "tcr"]),
        (Kind::Attack, &["apgd", "fgsm", "pgd-linf", "square"]),
        (
            Kind::Evaluator,
            &[
                "knn",
                "linear-probe",
                "multi-crop-probe",
                "robust-linear-probe",
            ],
        ),
    ];
    for (kind, names) in expected {
        let registered = kind.names();
        for name in names {
            assert!(
                registered.contains(name),
                "{kind} `{name}` is not registered (found {registered:?})"
            );
        }
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
