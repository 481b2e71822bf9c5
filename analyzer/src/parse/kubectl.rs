//! `kubectl get pods|services|endpointslices|nodes -A -o json`: who an address is.
//!
//! kubectl prints a `List` (`{"kind": "List", "items": [...]}`) whatever the resource, each item
//! carrying its own `kind`; `-o json` of one object prints the object alone. Only the fields that
//! name an address are read, from the Kubernetes API types (k8s.io/api core/v1 `Pod`, `Service`,
//! `Node`, discovery/v1 `EndpointSlice`); everything else, `managedFields` and annotations
//! included, is skipped while it streams past, so a cluster of 10⁴ pods costs the size of its
//! address table, not of the document.
//!
//! The result is an address book — IP → {kind, namespace, name, node} — and the set of addresses
//! that are current endpoints of some Service, which is what tells a stale DNAT backend (a pod
//! gone after a rollout) from a live one.

use super::{ChunkCtx, LineProblems};
use crate::problem::{Problem, Severity};
use crate::summary::Merge;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::IpAddr;

/// What kind of object an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    /// A Service's ClusterIP, external IP or load-balancer address.
    Service,
    /// A node's InternalIP or ExternalIP.
    Node,
    /// A pod's IP (hostNetwork pods excluded: their address is the node's).
    Pod,
}

/// The object an address belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    pub kind: AddressKind,
    /// Absent for nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The node a pod runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A pod in phase Running (a finished pod's IP may have been handed to another pod).
    #[serde(skip)]
    pub running: bool,
}

impl Named {
    /// `namespace/name`, or the bare name of a node: how kubectl users write it.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Which of two claims on one address wins: a Service or a node over a pod, a running pod
    /// over a finished one, then the smaller name so the result never depends on input order.
    fn outranks(&self, other: &Named) -> bool {
        (self.kind, !self.running, self.label()) < (other.kind, !other.running, other.label())
    }
}

/// What the kubectl documents of one bundle say, merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeSummary {
    /// Objects read, by kind (`Pod`, `Service`, `EndpointSlice`, `Node`, others).
    pub objects: BTreeMap<String, u64>,
    pub addresses: BTreeMap<IpAddr, Named>,
    /// NodePort → the Service (`namespace/name`) that owns it.
    pub node_ports: BTreeMap<u16, String>,
    /// Addresses that are endpoints of some EndpointSlice now → the Services they serve.
    pub endpoints: BTreeMap<IpAddr, BTreeSet<String>>,
    /// EndpointSlices read (0: no slices, the stale-backend test cannot use them).
    pub endpoint_slices: u64,
    /// Pod UID (`metadata.uid`) → `namespace/name`: names the pod a network namespace belongs to
    /// (the collector reads the UID from the pod's cgroup). hostNetwork pods included.
    pub pods_by_uid: BTreeMap<String, String>,
}

impl KubeSummary {
    fn claim(&mut self, ip: IpAddr, named: Named) {
        match self.addresses.get(&ip) {
            Some(have) if !named.outranks(have) => {}
            _ => {
                self.addresses.insert(ip, named);
            }
        }
    }

    /// Records a pod's UID; two names for one UID keep the smaller, so input order never matters.
    fn name_pod(&mut self, uid: String, name: String) {
        match self.pods_by_uid.get(&uid) {
            Some(have) if *have <= name => {}
            _ => {
                self.pods_by_uid.insert(uid, name);
            }
        }
    }

    /// The pod (`namespace/name`) with this UID, if pods were read.
    pub fn pod_by_uid(&self, uid: &str) -> Option<&str> {
        self.pods_by_uid.get(uid).map(String::as_str)
    }

    /// Who `ip` is, if any document said.
    pub fn lookup(&self, ip: &IpAddr) -> Option<&Named> {
        self.addresses.get(ip)
    }
}

impl Merge for KubeSummary {
    fn combine(&mut self, other: Self) {
        for (k, v) in other.objects {
            *self.objects.entry(k).or_insert(0) += v;
        }
        for (ip, named) in other.addresses {
            self.claim(ip, named);
        }
        for (port, svc) in other.node_ports {
            let slot = self.node_ports.entry(port).or_insert_with(|| svc.clone());
            if svc < *slot {
                *slot = svc;
            }
        }
        for (ip, services) in other.endpoints {
            self.endpoints.entry(ip).or_default().extend(services);
        }
        self.endpoint_slices += other.endpoint_slices;
        for (uid, name) in other.pods_by_uid {
            self.name_pod(uid, name);
        }
    }
}

// The API fields read; serde skips the rest. Specs and statuses of the four kinds share one
// struct each: their field names do not collide.

/// A list, or one object alone. (Not `#[serde(flatten)]`: that buffers the whole document.)
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Document {
    kind: Option<String>,
    items: Option<Vec<Object>>,
    metadata: Metadata,
    spec: Spec,
    status: Status,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Object {
    kind: Option<String>,
    metadata: Metadata,
    spec: Spec,
    status: Status,
    /// EndpointSlice.
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    name: String,
    namespace: Option<String>,
    uid: Option<String>,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    /// Pod.
    node_name: Option<String>,
    host_network: bool,
    /// Service.
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Vec<String>,
    #[serde(rename = "externalIPs")]
    external_ips: Vec<String>,
    ports: Vec<ServicePort>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ServicePort {
    node_port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Status {
    /// Pod.
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Vec<IpField>,
    /// Node.
    addresses: Vec<NodeAddress>,
    /// Service.
    load_balancer: LoadBalancer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IpField {
    ip: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NodeAddress {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoadBalancer {
    ingress: Vec<IpField>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Endpoint {
    addresses: Vec<String>,
    target_ref: Option<TargetRef>,
    node_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TargetRef {
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
}

/// The label an EndpointSlice names its Service by (discovery/v1 `LabelServiceName`).
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

fn ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

impl KubeSummary {
    fn add(&mut self, o: Object, list_kind: Option<&str>) {
        let kind = o.kind.clone().or_else(|| list_kind.map(str::to_string));
        let Some(kind) = kind else {
            *self.objects.entry("unknown".into()).or_insert(0) += 1;
            return;
        };
        *self.objects.entry(kind.clone()).or_insert(0) += 1;
        let ns = o.metadata.namespace.clone();
        match kind.as_str() {
            "Pod" => {
                if let Some(uid) = o.metadata.uid.clone().filter(|u| !u.is_empty()) {
                    let label = match &ns {
                        Some(ns) => format!("{ns}/{}", o.metadata.name),
                        None => o.metadata.name.clone(),
                    };
                    self.name_pod(uid, label);
                }
                if o.spec.host_network {
                    return;
                }
                let named = Named {
                    kind: AddressKind::Pod,
                    namespace: ns,
                    name: o.metadata.name,
                    node: o.spec.node_name,
                    running: o.status.phase.as_deref() == Some("Running"),
                };
                let ips = o
                    .status
                    .pod_ips
                    .iter()
                    .filter_map(|p| p.ip.as_deref())
                    .chain(o.status.pod_ip.as_deref())
                    .filter_map(ip)
                    .collect::<BTreeSet<_>>();
                for a in ips {
                    self.claim(a, named.clone());
                }
            }
            "Service" => {
                let named = Named {
                    kind: AddressKind::Service,
                    namespace: ns,
                    name: o.metadata.name,
                    node: None,
                    running: true,
                };
                let label = named.label();
                let ips = o
                    .spec
                    .cluster_ips
                    .iter()
                    .chain(o.spec.cluster_ip.as_ref())
                    .chain(&o.spec.external_ips)
                    .map(String::as_str)
                    .chain(
                        o.status
                            .load_balancer
                            .ingress
                            .iter()
                            .filter_map(|i| i.ip.as_deref()),
                    )
                    // Headless services say "None".
                    .filter_map(ip)
                    .collect::<BTreeSet<_>>();
                for a in ips {
                    self.claim(a, named.clone());
                }
                for p in &o.spec.ports {
                    if let Some(np) = p.node_port {
                        let slot = self.node_ports.entry(np).or_insert_with(|| label.clone());
                        if label < *slot {
                            *slot = label.clone();
                        }
                    }
                }
            }
            "Node" => {
                let name = o.metadata.name;
                for a in &o.status.addresses {
                    if (a.kind == "InternalIP" || a.kind == "ExternalIP")
                        && let Some(addr) = ip(&a.address)
                    {
                        self.claim(
                            addr,
                            Named {
                                kind: AddressKind::Node,
                                namespace: None,
                                name: name.clone(),
                                node: Some(name.clone()),
                                running: true,
                            },
                        );
                    }
                }
            }
            "EndpointSlice" => {
                self.endpoint_slices += 1;
                let service = o
                    .metadata
                    .labels
                    .get(SERVICE_NAME_LABEL)
                    .map(|s| match &ns {
                        Some(ns) => format!("{ns}/{s}"),
                        None => s.clone(),
                    });
                for e in o.endpoints {
                    for a in e.addresses.iter().filter_map(|a| ip(a)) {
                        let set = self.endpoints.entry(a).or_default();
                        set.extend(service.clone());
                        // The slice names the pod behind the address even without pods.json.
                        if let Some(t) = &e.target_ref
                            && t.kind.as_deref() == Some("Pod")
                            && !self.addresses.contains_key(&a)
                        {
                            self.claim(
                                a,
                                Named {
                                    kind: AddressKind::Pod,
                                    namespace: t.namespace.clone().or_else(|| ns.clone()),
                                    name: t.name.clone(),
                                    node: e.node_name.clone(),
                                    running: false,
                                },
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether a member's first bytes are a kubectl JSON document (classification).
pub fn looks_like(head: &[u8]) -> bool {
    let text = head.trim_ascii_start();
    if !text.starts_with(b"{") {
        return false;
    }
    let has = |n: &[u8]| memchr::memmem::find(head, n).is_some();
    has(b"\"apiVersion\"")
        && has(b"\"metadata\"")
        && [
            &b"\"Pod\""[..],
            b"\"Service\"",
            b"\"EndpointSlice\"",
            b"\"Node\"",
            b"\"PodList\"",
            b"\"ServiceList\"",
            b"\"EndpointSliceList\"",
            b"\"NodeList\"",
        ]
        .iter()
        .any(|k| has(k))
}

impl KubeSummary {
    fn add_document(&mut self, doc: Document) {
        // `kubectl get pods -o json` lists are `List`; the API's own are `PodList`.
        let item_kind = doc
            .kind
            .as_deref()
            .and_then(|k| k.strip_suffix("List"))
            .filter(|k| !k.is_empty());
        match doc.items {
            Some(items) => {
                for o in items {
                    self.add(o, item_kind);
                }
            }
            None => self.add(
                Object {
                    kind: doc.kind,
                    metadata: doc.metadata,
                    spec: doc.spec,
                    status: doc.status,
                    endpoints: doc.endpoints,
                },
                None,
            ),
        }
    }
}

/// Parses one kubectl document, streaming from `reader`.
pub fn parse_reader(ctx: &ChunkCtx, reader: impl Read, problems: &mut LineProblems) -> KubeSummary {
    let mut s = KubeSummary::default();
    let mut de = serde_json::Deserializer::from_reader(reader);
    match Document::deserialize(&mut de).and_then(|d| de.end().map(|()| d)) {
        Ok(doc) => s.add_document(doc),
        Err(e) => problems.push(
            Problem::new(
                &*ctx.member,
                Severity::Warning,
                format!("not a readable kubectl JSON document, names not used: {e}"),
            )
            .at_line(e.line() as u64),
        ),
    }
    s
}

/// Parses the same objects written as YAML (a cilium sysdump's `k8s-pods-<time>.yaml`, a
/// `List` marshalled by the client): one document.
pub fn parse_yaml_reader(
    ctx: &ChunkCtx,
    reader: impl Read,
    problems: &mut LineProblems,
) -> KubeSummary {
    let mut s = KubeSummary::default();
    match serde_norway::from_reader::<_, Document>(reader) {
        Ok(doc) => s.add_document(doc),
        Err(e) => problems.push(
            Problem::new(
                &*ctx.member,
                Severity::Warning,
                format!("not a readable Kubernetes YAML document, names not used: {e}"),
            )
            .at_line(e.location().map(|l| l.line() as u64).unwrap_or(1)),
        ),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use std::sync::Arc;

    fn parse(json: &str) -> (KubeSummary, Vec<Problem>) {
        let ctx = ChunkCtx {
            member: Arc::from("cluster/x.json"),
            kind: MemberKind::KubeObjects,
            first_line: 1,
        };
        let mut p = LineProblems::default();
        let s = parse_reader(&ctx, json.as_bytes(), &mut p);
        (s, p.into_problems())
    }

    /// Trimmed from `kubectl get pods -A -o json` (v1.31): a running pod, a hostNetwork pod and a
    /// finished pod whose IP was reused.
    const PODS: &str = r#"{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "creationTimestamp": "2026-11-25T13:00:00Z",
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:metadata": {}}}],
                "name": "web-7d9f8c6b5-x2k4q",
                "namespace": "shop",
                "uid": "0b6e0f7c-2c1a-4c55-9d1f-3f6f7e1c2a10"
            },
            "spec": {
                "containers": [{"image": "nginx:1.27", "name": "web", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
                "nodeName": "worker-2"
            },
            "status": {
                "phase": "Running",
                "podIP": "10.244.2.7",
                "podIPs": [{"ip": "10.244.2.7"}, {"ip": "fd00:10:244:2::7"}]
            }
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "kube-proxy-8xq2d", "namespace": "kube-system"},
            "spec": {"hostNetwork": true, "nodeName": "worker-2"},
            "status": {"phase": "Running", "podIP": "192.168.10.12", "podIPs": [{"ip": "192.168.10.12"}]}
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "batch-28930", "namespace": "jobs"},
            "spec": {"nodeName": "worker-1"},
            "status": {"phase": "Succeeded", "podIP": "10.244.2.7"}
        }
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}"#;

    #[test]
    fn pods_are_named_by_their_uid() {
        let (s, _) = parse(PODS);
        assert_eq!(
            s.pod_by_uid("0b6e0f7c-2c1a-4c55-9d1f-3f6f7e1c2a10"),
            Some("shop/web-7d9f8c6b5-x2k4q")
        );
        assert_eq!(s.pods_by_uid.len(), 1, "pods without a uid are not keyed");
    }

    #[test]
    fn pods_name_their_ips_and_a_running_pod_wins_a_reused_ip() {
        let (s, p) = parse(PODS);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.objects["Pod"], 3);
        let web = s.lookup(&"10.244.2.7".parse().unwrap()).unwrap();
        assert_eq!(
            (web.kind, web.label().as_str(), web.node.as_deref()),
            (
                AddressKind::Pod,
                "shop/web-7d9f8c6b5-x2k4q",
                Some("worker-2")
            )
        );
        assert!(s.lookup(&"fd00:10:244:2::7".parse().unwrap()).is_some());
        assert!(
            s.lookup(&"192.168.10.12".parse().unwrap()).is_none(),
            "a hostNetwork pod's address is its node's"
        );
    }

    #[test]
    fn services_nodes_and_endpoint_slices_are_read() {
        let (s, p) = parse(
            r#"{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
   "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "type": "NodePort",
            "ports": [{"name": "http", "nodePort": 30080, "port": 80, "protocol": "TCP", "targetPort": "http"}]},
   "status": {"loadBalancer": {}}},
  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
   "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432, "targetPort": 5432}]}},
  {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-2", "labels": {"kubernetes.io/hostname": "worker-2"}},
   "status": {"addresses": [{"address": "192.168.10.12", "type": "InternalIP"}, {"address": "worker-2", "type": "Hostname"}]}},
  {"addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
   "endpoints": [{"addresses": ["10.244.2.7"], "conditions": {"ready": true, "serving": true, "terminating": false},
                  "nodeName": "worker-2", "targetRef": {"kind": "Pod", "name": "api-5c9d7-abcde", "namespace": "shop", "uid": "x"}}],
   "metadata": {"name": "api-8k2lp", "namespace": "shop", "labels": {"kubernetes.io/service-name": "api"}},
   "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
]}"#,
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            s.lookup(&"10.96.0.20".parse().unwrap()).map(Named::label),
            Some("shop/api".to_string())
        );
        assert_eq!(
            s.node_ports.get(&30080).map(String::as_str),
            Some("shop/api")
        );
        assert_eq!(
            s.lookup(&"192.168.10.12".parse().unwrap()).map(|n| n.kind),
            Some(AddressKind::Node)
        );
        assert_eq!(s.endpoint_slices, 1);
        let ep: IpAddr = "10.244.2.7".parse().unwrap();
        assert_eq!(s.endpoints[&ep].iter().collect::<Vec<_>>(), ["shop/api"]);
        assert_eq!(
            s.lookup(&ep).map(Named::label),
            Some("shop/api-5c9d7-abcde".to_string()),
            "the slice's targetRef names the pod"
        );
    }

    #[test]
    fn merging_documents_in_either_order_gives_one_book() {
        let (a, _) = parse(PODS);
        let (b, _) = parse(
            r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "odd", "namespace": "x"}, "spec": {"clusterIP": "10.244.2.7"}}"#,
        );
        let mut ab = a.clone();
        ab.combine(b.clone());
        let mut ba = b;
        ba.combine(a);
        assert_eq!(ab, ba);
        assert_eq!(
            ab.lookup(&"10.244.2.7".parse().unwrap()).map(|n| n.kind),
            Some(AddressKind::Service)
        );
    }

    #[test]
    fn a_broken_document_is_a_problem_with_its_line() {
        let (s, p) = parse("{\n\"apiVersion\": \"v1\",\n\"items\": [}\n");
        assert!(s.addresses.is_empty());
        assert_eq!(p[0].line, Some(3));
        assert!(
            kinds_recognised(),
            "classification sniffs kubectl documents"
        );
    }

    fn kinds_recognised() -> bool {
        looks_like(PODS.as_bytes()) && !looks_like(b"{\"members\": []}")
    }
}
