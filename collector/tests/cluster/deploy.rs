//! The manifests in `collector/deploy/`, read as Kubernetes would read them (YAML, every document)
//! and checked on the fields that make them work on every node and stay removable. Their shell
//! scripts are checked for syntax by `sh -n`.

use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

fn documents(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn shell_syntax_ok(script: &str) {
    let out = std::process::Command::new("sh")
        .args(["-n", "-c", script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}: {script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_daemonset_runs_privileged_in_the_hosts_namespaces_on_every_node() {
    let docs = documents("daemonset.yaml");
    let ns = kind(&docs, "Namespace");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let ds = kind(&docs, "DaemonSet");
    assert_eq!(ds["apiVersion"], "apps/v1");
    assert_eq!(ds["metadata"]["namespace"], ns["metadata"]["name"]);
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "ctdiag-collect");
    for (k, v) in ds["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(&labels[k], v, "the selector matches the pods");
    }
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["hostPID"], true);
    assert_eq!(
        spec["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    assert!(spec.get("nodeSelector").is_none(), "every node");
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert!(c["resources"]["limits"]["cpu"].is_string());
    assert_eq!(
        c["env"][0],
        serde_json::json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    );
    let script = c["args"][0].as_str().expect("script");
    assert!(
        script.contains("chroot /host \"$r/usr/local/bin/ctdiag-collect\" --node \"$NODE_NAME\"")
    );
    shell_syntax_ok(script);
    let volumes = spec["volumes"].as_array().expect("volumes");
    let host_path = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .map(|v| v["hostPath"]["path"].clone())
    };
    assert_eq!(host_path("host"), Some("/".into()));
    assert_eq!(host_path("bundles"), Some("/var/lib/ctdiag".into()));
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/host" && m["readOnly"] == true)
    );
}

#[test]
fn the_cleanup_removes_only_the_collectors_files_from_the_same_directory() {
    let docs = documents("cleanup.yaml");
    let ds = kind(&docs, "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["tolerations"][0]["operator"], "Exists");
    assert_eq!(spec["volumes"][0]["hostPath"]["path"], "/var/lib/ctdiag");
    assert!(spec.get("hostNetwork").is_none() && spec.get("hostPID").is_none());
    let script = spec["containers"][0]["args"][0].as_str().expect("script");
    assert!(
        script.starts_with("rm -f /bundles/ctdiag-*.tar.gz /bundles/.ctdiag-*;"),
        "{script}"
    );
    shell_syntax_ok(script);
    assert_eq!(
        ds["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "ctdiag-collect"
    );
}

#[test]
fn the_readme_names_every_manifest() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/README.md"))
            .expect("deploy/README.md");
    for name in [
        "daemonset.yaml",
        "cleanup.yaml",
        "Dockerfile",
        "/var/lib/ctdiag",
    ] {
        assert!(readme.contains(name), "{name}");
    }
}
