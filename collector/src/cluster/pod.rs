//! The short-lived pod that runs the collector on one node, and the guarantee that it goes away.
//!
//! The pod is pinned to its node (`nodeName`, so the scheduler and its taints are not involved;
//! every taint is tolerated so NoExecute ones do not evict it), privileged, in the host's network
//! and PID namespaces, with the host's root mounted read-only at `/host`. It only sleeps: the
//! collector runs through `kubectl exec`. Every pod carries `app.kubernetes.io/managed-by=
//! ctdiag-collect` and the run's id, and an `activeDeadlineSeconds` after which the kubelet kills
//! it even if this process was killed before it could delete it.
//!
//! The collector runs `chroot /host`, so it sees the node as the node sees itself: the host's
//! `conntrack`, `ipvsadm`, `dmesg`, `/etc/os-release`. The binary itself stays in the pod's own
//! filesystem (an emptyDir at `/ctdiag`, gone with the pod), reached from inside the chroot through
//! `/proc/<pid>/root` of the shell that stays outside it: nothing is written to the node.

use super::kubectl::Kubectl;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Labels every pod of ours carries: `kubectl get pods -A -l app.kubernetes.io/managed-by=
/// ctdiag-collect` finds any left behind.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "ctdiag-collect";
pub const RUN_LABEL: &str = "ctdiag-collect/run";
/// The container's name, for `kubectl exec -c`.
pub const CONTAINER: &str = "collector";
/// The pod's own scratch directory (emptyDir): the streamed binary and the collector's spools.
pub const WORK_DIR: &str = "/ctdiag";

/// What a node's pod is made of.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub name: String,
    pub namespace: String,
    pub node: String,
    pub image: String,
    pub run_id: String,
    /// `activeDeadlineSeconds`: the pod's whole life, however this process ends.
    pub deadline: Duration,
}

impl PodPlan {
    pub fn new(node: &str, namespace: &str, image: &str, run_id: &str, deadline: Duration) -> Self {
        PodPlan {
            name: pod_name(node, run_id),
            namespace: namespace.to_string(),
            node: node.to_string(),
            image: image.to_string(),
            run_id: run_id.to_string(),
            deadline,
        }
    }

    /// The Pod object, as JSON (what `kubectl create -f -` reads).
    pub fn spec(&self) -> Value {
        let secs = self.deadline.as_secs().max(60);
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/name": "ctdiag-collect",
                    MANAGED_BY: MANAGER,
                    RUN_LABEL: self.run_id,
                },
                "annotations": {
                    "ctdiag-collect/node": self.node,
                    "ctdiag-collect/purpose": "one-off read-only collection of connection-tracking state; deleted when done",
                },
            },
            "spec": {
                "nodeName": self.node,
                "restartPolicy": "Never",
                "activeDeadlineSeconds": secs,
                "terminationGracePeriodSeconds": 1,
                "hostNetwork": true,
                "hostPID": true,
                "dnsPolicy": "ClusterFirstWithHostNet",
                "automountServiceAccountToken": false,
                "enableServiceLinks": false,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{
                    "name": CONTAINER,
                    "image": self.image,
                    "imagePullPolicy": "IfNotPresent",
                    // Lives no longer than its deadline even if nobody deletes it.
                    "command": ["sleep", secs.to_string()],
                    "securityContext": {"privileged": true},
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "64Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "8Gi"},
                    },
                    "volumeMounts": [
                        {"name": "host", "mountPath": "/host", "readOnly": true},
                        {"name": "work", "mountPath": WORK_DIR},
                    ],
                }],
                "volumes": [
                    {"name": "host", "hostPath": {"path": "/", "type": "Directory"}},
                    {"name": "work", "emptyDir": {"sizeLimit": "8Gi"}},
                ],
            },
        })
    }
}

/// `ctdiag-<node>-<run>`: a valid pod name (DNS label, ≤ 63) whatever the node is called.
pub fn pod_name(node: &str, run_id: &str) -> String {
    let mut part: String = node
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    part.truncate(63 - "ctdiag--".len() - run_id.len());
    let part = part.trim_matches('-');
    let part = if part.is_empty() { "node" } else { part };
    format!("ctdiag-{part}-{run_id}")
}

/// `sh -c` script that stores standard input as the collector binary in the pod.
pub fn upload_script() -> String {
    format!("cat > {WORK_DIR}/ctdiag-collect && chmod 0755 {WORK_DIR}/ctdiag-collect")
}

/// `sh -c` script that runs the collector on the node, its arguments following as `"$@"`.
/// `streamed`: the binary was uploaded to the pod; otherwise it is the image's `ctdiag-collect`.
pub fn collect_script(streamed: bool) -> String {
    let binary = if streamed {
        format!("b={WORK_DIR}/ctdiag-collect")
    } else {
        "b=$(command -v ctdiag-collect) || { echo 'ctdiag-collect is not on the PATH of the --image' >&2; exit 127; }".into()
    };
    // The shell stays outside the chroot so that /proc/$$/root keeps naming the pod's root.
    format!(
        "{binary}\n\
         r=/proc/$$/root\n\
         [ -d /host/proc/$$ ] || {{ echo \"the host's /proc is not visible under /host\" >&2; exit 1; }}\n\
         TMPDIR=$r{WORK_DIR} chroot /host \"$r$b\" \"$@\""
    )
}

/// Pods created by this run and not yet deleted, for the interrupt handler.
static LIVE: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn live() -> std::sync::MutexGuard<'static, BTreeMap<String, String>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Deletes every pod still registered (the interrupt handler's cleanup), one call per namespace.
/// Returns how many were asked to go.
pub fn delete_all(kubectl: &Kubectl) -> usize {
    let pods: Vec<(String, String)> = live()
        .iter()
        .map(|(n, ns)| (n.clone(), ns.clone()))
        .collect();
    let mut by_ns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, ns) in pods.iter().cloned() {
        by_ns.entry(ns).or_default().push(name);
    }
    for (ns, names) in by_ns {
        kubectl.delete_pods(&ns, &names, Duration::from_secs(30));
    }
    pods.len()
}

/// A pod of ours: registered before it is created, deleted when dropped, whatever happened in
/// between (an error, a panic, an interrupt).
pub struct PodGuard {
    pub plan: PodPlan,
    kubectl: Kubectl,
}

impl PodGuard {
    /// Registers the pod; the caller creates it next. Registration comes first so that an
    /// interrupt arriving while `kubectl create` runs still deletes it.
    pub fn register(plan: PodPlan, kubectl: Kubectl) -> PodGuard {
        live().insert(plan.name.clone(), plan.namespace.clone());
        PodGuard { plan, kubectl }
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        // Deleting twice is harmless (--ignore-not-found); missing one is not.
        self.kubectl.delete_pods(
            &self.plan.namespace,
            std::slice::from_ref(&self.plan.name),
            Duration::from_secs(30),
        );
        live().remove(&self.plan.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_dns_labels_whatever_the_node_is_called() {
        assert_eq!(pod_name("worker-3", "a1b2c3"), "ctdiag-worker-3-a1b2c3");
        assert_eq!(
            pod_name("ip-10-0-1-5.eu-west-1.compute.internal", "a1b2c3"),
            "ctdiag-ip-10-0-1-5-eu-west-1-compute-internal-a1b2c3"
        );
        let long = pod_name(&"n".repeat(300), "a1b2c3");
        assert_eq!(long.len(), 63);
        assert_eq!(pod_name("..", "a1b2c3"), "ctdiag-node-a1b2c3");
    }

    /// The fields that make the pod do its job and go away, checked on the JSON sent to kubectl.
    #[test]
    fn the_pod_is_pinned_privileged_in_host_namespaces_labelled_and_bounded() {
        let plan = PodPlan::new(
            "worker-3",
            "default",
            "busybox:1.36",
            "a1b2c3",
            Duration::from_secs(900),
        );
        let text = serde_json::to_string(&plan.spec()).unwrap();
        let pod: Value = serde_json::from_str(&text).unwrap();
        let spec = &pod["spec"];
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(spec["nodeName"], "worker-3");
        assert_eq!(spec["hostNetwork"], true);
        assert_eq!(spec["hostPID"], true);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["activeDeadlineSeconds"], 900);
        assert_eq!(spec["tolerations"][0]["operator"], "Exists");
        let c = &spec["containers"][0];
        assert_eq!(c["name"], CONTAINER);
        assert_eq!(c["securityContext"]["privileged"], true);
        assert_eq!(c["command"], json!(["sleep", "900"]));
        assert!(c["resources"]["limits"]["memory"].is_string());
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels[MANAGED_BY], MANAGER);
        assert_eq!(labels[RUN_LABEL], "a1b2c3");
        let host = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "host")
            .unwrap();
        assert_eq!(host["hostPath"]["path"], "/");
        assert!(
            c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == "/host" && m["readOnly"] == true)
        );
    }

    #[test]
    fn the_scripts_run_the_binary_from_the_pod_inside_the_hosts_root() {
        let s = collect_script(true);
        assert!(s.contains("chroot /host \"$r$b\" \"$@\""), "{s}");
        assert!(s.contains("b=/ctdiag/ctdiag-collect"), "{s}");
        assert!(collect_script(false).contains("command -v ctdiag-collect"));
        assert_eq!(
            upload_script(),
            "cat > /ctdiag/ctdiag-collect && chmod 0755 /ctdiag/ctdiag-collect"
        );
    }
}
