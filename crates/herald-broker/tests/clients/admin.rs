//! Topic configs through an unmodified admin client: confluent-kafka's
//! `AdminClient.alter_configs` speaks the legacy AlterConfigs API (KIP-133), which
//! replaces a topic's overrides; `describe_configs` reads them back; a consumer reads a
//! LogAppendTime topic's records with the broker's append time.

use crate::support::{TestBroker, python, run_script};

#[test]
fn confluent_kafka_legacy_alter_configs_replaces_overrides() {
    let Some(py) = python() else { return };
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("configured", 1);
    let args = ["--bootstrap", &bootstrap, "--topic", "configured"];
    let Some(result) = run_script(&py, "admin_configs.py", &args) else {
        return;
    };
    assert_eq!(result["retention.ms"], "120000", "{result}");
    assert_eq!(
        result["max.message.bytes"], "1048588",
        "back to the default: {result}"
    );
    assert_eq!(result["cluster"]["nodes"], 1, "{result}");
    assert_eq!(result["cluster"]["controller"], 1, "{result}");
    assert!(
        !result["cluster"]["id"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(result["cluster"]["describe_allowed"], true, "{result}");
    let refused = result["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("no.such.config"),
        "the refusal names the key: {refused}"
    );
}
