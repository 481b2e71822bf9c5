//! `sysctl/net.txt`: `sysctl -a` restricted to `net.` keys, as procps-ng prints them on a 6.1
//! Kubernetes worker (flannel on `cni0`/`flannel.1`, kube-proxy in iptables mode).
//!
//! The conntrack keys are what the analyzer reads; the neighbours are there because real files
//! have them, and a parser that only ever saw the keys it wants would not notice the traps:
//! TAB-separated multi-value keys (`ip_local_port_range = 32768<TAB>60999`), an empty value with a
//! trailing space (`ip_local_reserved_ports = `), interface names with dots printed as slashes
//! (`conf.flannel/1`), and `stable_secret` keys that fail to read and go to stderr.
//! Keys are sorted component by component, the order the kernel's sysctl tree is read in.

use crate::node::Node;

/// What the conntrack part of the file must say.
#[derive(Debug, Clone, Copy)]
pub struct ConntrackSysctl {
    pub max: u64,
    pub buckets: u64,
    pub count: u64,
    /// kube-proxy runs and has set its two timeouts (established 86400, close_wait 3600);
    /// otherwise the kernel defaults stand (432000, 60), as on a Cilium node replacing it.
    pub kube_proxy: bool,
}

/// Interfaces whose `conf.*` keys appear: the uplink, the pod bridge, the overlay, loopback and
/// each pod's veth.
pub struct Interfaces<'a> {
    pub veths: &'a [String],
    /// Cilium's `cilium_host`/`cilium_net` and `lxc…` devices instead of flannel's `cni0`,
    /// `flannel.1` and `veth…`.
    pub cilium: bool,
}

const UPLINK: &str = "ens4";

/// Established-connection hash size the kernel picks for this RAM (the boot log's "TCP: Hash tables
/// configured (established N …)"); several TCP limits derive from it.
pub fn tcp_ehash_entries(node: &Node) -> u64 {
    let raw = node.mem_kb / 128;
    let up = raw.next_power_of_two();
    if up - raw < raw - up / 2 { up } else { up / 2 }
}

/// Returns (stdout, stderr) of `sysctl -a`, restricted to `net.`.
pub fn net_sysctl(node: &Node, ct: ConntrackSysctl, ifaces: &Interfaces<'_>) -> (String, String) {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| keys.push((format!("net.{k}"), v));

    let ehash = tcp_ehash_entries(node);
    let pages = node.mem_kb / 4;
    let tcp_limit = pages * 97 / 100 / 16;
    let udp_limit = pages * 97 / 100 / 8;
    let tcp_mem = [tcp_limit / 4 * 3, tcp_limit, tcp_limit / 4 * 3 * 2];
    let udp_mem = [udp_limit / 4 * 3, udp_limit, udp_limit / 4 * 3 * 2];

    for (k, v) in [
        ("bridge.bridge-nf-call-arptables", "1"),
        ("bridge.bridge-nf-call-ip6tables", "1"),
        ("bridge.bridge-nf-call-iptables", "1"),
        ("bridge.bridge-nf-filter-pppoe-tagged", "0"),
        ("bridge.bridge-nf-filter-vlan-tagged", "0"),
        ("bridge.bridge-nf-pass-vlan-input-dev", "0"),
        ("core.bpf_jit_enable", "1"),
        ("core.bpf_jit_harden", "0"),
        ("core.bpf_jit_kallsyms", "1"),
        ("core.bpf_jit_limit", "264241152"),
        ("core.busy_poll", "0"),
        ("core.busy_read", "0"),
        ("core.default_qdisc", "fq_codel"),
        ("core.dev_weight", "64"),
        ("core.dev_weight_rx_bias", "1"),
        ("core.dev_weight_tx_bias", "1"),
        ("core.devconf_inherit_init_net", "0"),
        ("core.fb_tunnels_only_for_init_net", "0"),
        ("core.flow_limit_cpu_bitmap", "0"),
        ("core.flow_limit_table_len", "4096"),
        ("core.gro_normal_batch", "8"),
        ("core.high_order_alloc_disable", "0"),
        ("core.max_skb_frags", "17"),
        ("core.message_burst", "10"),
        ("core.message_cost", "5"),
        ("core.netdev_budget", "300"),
        ("core.netdev_budget_usecs", "8000"),
        ("core.netdev_max_backlog", "1000"),
        ("core.netdev_tstamp_prequeue", "1"),
        ("core.netdev_unregister_timeout_secs", "10"),
        ("core.optmem_max", "20480"),
        ("core.rmem_default", "212992"),
        ("core.rmem_max", "212992"),
        ("core.rps_sock_flow_entries", "0"),
        ("core.somaxconn", "4096"),
        ("core.tstamp_allow_data", "1"),
        ("core.txrehash", "1"),
        ("core.warnings", "0"),
        ("core.wmem_default", "212992"),
        ("core.wmem_max", "212992"),
        ("core.xfrm_acq_expires", "30"),
        ("core.xfrm_aevent_etime", "10"),
        ("core.xfrm_aevent_rseqth", "2"),
        ("core.xfrm_larval_drop", "1"),
    ] {
        put(k, v.to_string());
    }
    put(
        "core.netdev_rss_key",
        vec!["00"; 52].join(":"), // unset until a driver with RSS asks for it
    );

    for (k, v) in [
        ("cipso_cache_bucket_size", "10"),
        ("cipso_cache_enable", "1"),
        ("cipso_rbm_optfmt", "0"),
        ("cipso_rbm_strictvalid", "1"),
        ("fib_multipath_hash_fields", "7"),
        ("fib_multipath_hash_policy", "0"),
        ("fib_multipath_use_neigh", "0"),
        ("fib_notify_on_flag_change", "0"),
        ("fib_sync_mem", "524288"),
        ("fwmark_reflect", "0"),
        ("icmp_echo_enable_probe", "0"),
        ("icmp_echo_ignore_all", "0"),
        ("icmp_echo_ignore_broadcasts", "1"),
        ("icmp_errors_use_inbound_ifaddr", "0"),
        ("icmp_ignore_bogus_error_responses", "1"),
        ("icmp_msgs_burst", "50"),
        ("icmp_msgs_per_sec", "1000"),
        ("icmp_ratelimit", "1000"),
        ("icmp_ratemask", "6168"),
        ("igmp_link_local_mcast_reports", "1"),
        ("igmp_max_memberships", "20"),
        ("igmp_max_msf", "10"),
        ("igmp_qrv", "2"),
        ("inet_peer_maxttl", "600"),
        ("inet_peer_minttl", "120"),
        ("inet_peer_threshold", "65664"),
        ("ip_autobind_reuse", "0"),
        ("ip_default_ttl", "64"),
        ("ip_dynaddr", "0"),
        ("ip_early_demux", "1"),
        ("ip_forward", "1"),
        ("ip_forward_update_priority", "1"),
        ("ip_forward_use_pmtu", "0"),
        ("ip_local_port_range", "32768\t60999"),
        ("ip_local_reserved_ports", ""),
        ("ip_no_pmtu_disc", "0"),
        ("ip_nonlocal_bind", "0"),
        ("ip_unprivileged_port_start", "1024"),
        ("ipfrag_high_thresh", "4194304"),
        ("ipfrag_low_thresh", "3145728"),
        ("ipfrag_max_dist", "64"),
        ("ipfrag_secret_interval", "0"),
        ("ipfrag_time", "30"),
        ("nexthop_compat_mode", "1"),
        ("ping_group_range", "0\t2147483647"),
        ("raw_l3mdev_accept", "1"),
        ("route.error_burst", "1250"),
        ("route.error_cost", "250"),
        ("route.gc_elasticity", "8"),
        ("route.gc_interval", "60"),
        ("route.gc_min_interval", "0"),
        ("route.gc_min_interval_ms", "500"),
        ("route.gc_thresh", "-1"),
        ("route.gc_timeout", "300"),
        ("route.max_size", "2147483647"),
        ("route.min_adv_mss", "256"),
        ("route.min_pmtu", "552"),
        ("route.mtu_expires", "600"),
        ("route.redirect_load", "5"),
        ("route.redirect_number", "9"),
        ("route.redirect_silence", "5120"),
        ("tcp_abort_on_overflow", "0"),
        ("tcp_adv_win_scale", "1"),
        ("tcp_allowed_congestion_control", "reno cubic"),
        ("tcp_app_win", "31"),
        ("tcp_autocorking", "1"),
        ("tcp_available_congestion_control", "reno cubic"),
        ("tcp_available_ulp", "espintcp mptcp tls"),
        ("tcp_base_mss", "1024"),
        ("tcp_challenge_ack_limit", "2147483647"),
        ("tcp_comp_sack_delay_ns", "1000000"),
        ("tcp_comp_sack_nr", "44"),
        ("tcp_comp_sack_slack_ns", "100000"),
        ("tcp_congestion_control", "cubic"),
        ("tcp_dsack", "1"),
        ("tcp_early_demux", "1"),
        ("tcp_early_retrans", "3"),
        ("tcp_ecn", "2"),
        ("tcp_ecn_fallback", "1"),
        ("tcp_fack", "0"),
        ("tcp_fastopen", "1"),
        ("tcp_fastopen_blackhole_timeout_sec", "0"),
        ("tcp_fin_timeout", "60"),
        ("tcp_frto", "2"),
        ("tcp_fwmark_accept", "0"),
        ("tcp_invalid_ratelimit", "500"),
        ("tcp_keepalive_intvl", "75"),
        ("tcp_keepalive_probes", "9"),
        ("tcp_keepalive_time", "7200"),
        ("tcp_l3mdev_accept", "0"),
        ("tcp_limit_output_bytes", "1048576"),
        ("tcp_low_latency", "0"),
        ("tcp_max_reordering", "300"),
        ("tcp_migrate_req", "0"),
        ("tcp_min_rtt_wlen", "300"),
        ("tcp_min_snd_mss", "48"),
        ("tcp_min_tso_segs", "2"),
        ("tcp_moderate_rcvbuf", "1"),
        ("tcp_mtu_probe_floor", "48"),
        ("tcp_mtu_probing", "0"),
        ("tcp_no_metrics_save", "0"),
        ("tcp_no_ssthresh_metrics_save", "1"),
        ("tcp_notsent_lowat", "4294967295"),
        ("tcp_orphan_retries", "0"),
        ("tcp_pacing_ca_ratio", "120"),
        ("tcp_pacing_ss_ratio", "200"),
        ("tcp_plb_cong_thresh", "128"),
        ("tcp_plb_enabled", "0"),
        ("tcp_plb_idle_rehash_rounds", "3"),
        ("tcp_plb_rehash_rounds", "12"),
        ("tcp_plb_suspend_rto_sec", "60"),
        ("tcp_probe_interval", "600"),
        ("tcp_probe_threshold", "8"),
        ("tcp_recovery", "1"),
        ("tcp_reflect_tos", "0"),
        ("tcp_reordering", "3"),
        ("tcp_retrans_collapse", "1"),
        ("tcp_retries1", "3"),
        ("tcp_retries2", "15"),
        ("tcp_rfc1337", "0"),
        ("tcp_rmem", "4096\t131072\t6291456"),
        ("tcp_sack", "1"),
        ("tcp_slow_start_after_idle", "1"),
        ("tcp_stdurg", "0"),
        ("tcp_syn_retries", "6"),
        ("tcp_synack_retries", "5"),
        ("tcp_syncookies", "1"),
        ("tcp_thin_linear_timeouts", "0"),
        ("tcp_timestamps", "1"),
        ("tcp_tso_win_divisor", "3"),
        ("tcp_tw_reuse", "2"),
        ("tcp_window_scaling", "1"),
        ("tcp_wmem", "4096\t16384\t4194304"),
        ("tcp_workaround_signed_windows", "0"),
        ("udp_early_demux", "1"),
        ("udp_l3mdev_accept", "0"),
        ("udp_rmem_min", "4096"),
        ("udp_wmem_min", "4096"),
        ("xfrm4_gc_thresh", "32768"),
    ] {
        put(&format!("ipv4.{k}"), v.to_string());
    }
    put(
        "ipv4.tcp_fastopen_key",
        "00000000-00000000-00000000-00000000".into(),
    );
    put("ipv4.tcp_max_orphans", (ehash / 2).to_string());
    put("ipv4.tcp_max_tw_buckets", (ehash / 2).to_string());
    put(
        "ipv4.tcp_max_syn_backlog",
        (ehash / 128).max(128).to_string(),
    );
    put("ipv4.tcp_mem", join_tab(&tcp_mem));
    put("ipv4.udp_mem", join_tab(&udp_mem));

    let (cni, named): (&[&str], &[&str]) = if ifaces.cilium {
        (
            &["cilium_host", "cilium_net"],
            &["all", "default", "cilium_host", "cilium_net", UPLINK, "lo"],
        )
    } else {
        (
            &["cni0", "flannel/1"],
            &["all", "default", "cni0", UPLINK, "flannel/1", "lo"],
        )
    };
    let mut conf_ifaces: Vec<String> = named.iter().map(|s| s.to_string()).collect();
    conf_ifaces.extend(ifaces.veths.iter().cloned());
    for ifname in &conf_ifaces {
        ipv4_conf(&mut put, ifname);
    }
    for ifname in ["default", UPLINK, "lo"].iter().chain(cni) {
        neigh(&mut put, "ipv4", ifname);
    }

    let mut stderr = String::new();
    for (k, v) in [
        ("anycast_src_echo_reply", "0"),
        ("auto_flowlabels", "1"),
        ("bindv6only", "0"),
        ("calipso_cache_bucket_size", "10"),
        ("calipso_cache_enable", "1"),
        ("fib_multipath_hash_fields", "7"),
        ("fib_multipath_hash_policy", "0"),
        ("fib_notify_on_flag_change", "0"),
        ("flowlabel_consistency", "1"),
        ("flowlabel_reflect", "0"),
        ("flowlabel_state_ranges", "0"),
        ("fwmark_reflect", "0"),
        ("icmp.echo_ignore_all", "0"),
        ("icmp.echo_ignore_anycast", "0"),
        ("icmp.echo_ignore_multicast", "0"),
        ("icmp.error_anycast_as_unicast", "0"),
        ("icmp.ratelimit", "1000"),
        ("icmp.ratemask", "0-1,3-127"),
        ("idgen_delay", "1"),
        ("idgen_retries", "3"),
        ("ioam6_id", "16777215"),
        ("ioam6_id_wide", "72057594037927935"),
        ("ip6frag_high_thresh", "4194304"),
        ("ip6frag_low_thresh", "3145728"),
        ("ip6frag_secret_interval", "0"),
        ("ip6frag_time", "60"),
        ("ip_nonlocal_bind", "0"),
        ("max_dst_opts_length", "2147483647"),
        ("max_dst_opts_number", "8"),
        ("max_hbh_length", "2147483647"),
        ("max_hbh_opts_number", "8"),
        ("mld_max_msf", "64"),
        ("mld_qrv", "2"),
        ("route.gc_elasticity", "9"),
        ("route.gc_interval", "30"),
        ("route.gc_min_interval", "0"),
        ("route.gc_min_interval_ms", "500"),
        ("route.gc_thresh", "1024"),
        ("route.gc_timeout", "60"),
        ("route.max_size", "2147483647"),
        ("route.min_adv_mss", "1220"),
        ("route.mtu_expires", "600"),
        ("route.skip_notify_on_dev_down", "0"),
        ("seg6_flowlabel", "0"),
        ("xfrm6_gc_thresh", "32768"),
    ] {
        put(&format!("ipv6.{k}"), v.to_string());
    }
    for ifname in &conf_ifaces {
        ipv6_conf(&mut put, ifname);
        // The kernel refuses to read an unset stable_secret (EIO); procps reports each on stderr.
        stderr.push_str(&format!(
            "sysctl: reading key \"net.ipv6.conf.{ifname}.stable_secret\"\n"
        ));
    }
    for ifname in ["default", UPLINK, "lo"] {
        neigh(&mut put, "ipv6", ifname);
    }

    // The conntrack family, kernel 6.1, with kube-proxy's two timeouts.
    let expect_max = (ct.buckets / 256).max(1) * 4;
    for (k, v) in [
        ("nf_conntrack_acct", "0".to_string()),
        ("nf_conntrack_buckets", ct.buckets.to_string()),
        ("nf_conntrack_checksum", "1".into()),
        ("nf_conntrack_count", ct.count.to_string()),
        ("nf_conntrack_dccp_loose", "1".into()),
        ("nf_conntrack_dccp_timeout_closereq", "64".into()),
        ("nf_conntrack_dccp_timeout_closing", "64".into()),
        ("nf_conntrack_dccp_timeout_open", "43200".into()),
        ("nf_conntrack_dccp_timeout_partopen", "480".into()),
        ("nf_conntrack_dccp_timeout_request", "240".into()),
        ("nf_conntrack_dccp_timeout_respond", "480".into()),
        ("nf_conntrack_dccp_timeout_timewait", "240".into()),
        ("nf_conntrack_events", "2".into()),
        ("nf_conntrack_expect_max", expect_max.to_string()),
        ("nf_conntrack_frag6_high_thresh", "4194304".into()),
        ("nf_conntrack_frag6_low_thresh", "3145728".into()),
        ("nf_conntrack_frag6_timeout", "60".into()),
        ("nf_conntrack_generic_timeout", "600".into()),
        ("nf_conntrack_gre_timeout", "30".into()),
        ("nf_conntrack_gre_timeout_stream", "180".into()),
        ("nf_conntrack_icmp_timeout", "30".into()),
        ("nf_conntrack_icmpv6_timeout", "30".into()),
        ("nf_conntrack_log_invalid", "0".into()),
        ("nf_conntrack_max", ct.max.to_string()),
        ("nf_conntrack_sctp_timeout_closed", "10".into()),
        ("nf_conntrack_sctp_timeout_cookie_echoed", "3".into()),
        ("nf_conntrack_sctp_timeout_cookie_wait", "3".into()),
        ("nf_conntrack_sctp_timeout_established", "210".into()),
        ("nf_conntrack_sctp_timeout_heartbeat_acked", "210".into()),
        ("nf_conntrack_sctp_timeout_heartbeat_sent", "30".into()),
        ("nf_conntrack_sctp_timeout_shutdown_ack_sent", "3".into()),
        ("nf_conntrack_sctp_timeout_shutdown_recd", "3".into()),
        ("nf_conntrack_sctp_timeout_shutdown_sent", "3".into()),
        ("nf_conntrack_tcp_be_liberal", "0".into()),
        ("nf_conntrack_tcp_ignore_invalid_rst", "0".into()),
        ("nf_conntrack_tcp_loose", "1".into()),
        ("nf_conntrack_tcp_max_retrans", "3".into()),
        ("nf_conntrack_tcp_timeout_close", "10".into()),
        (
            "nf_conntrack_tcp_timeout_close_wait",
            if ct.kube_proxy { "3600" } else { "60" }.into(),
        ),
        (
            "nf_conntrack_tcp_timeout_established",
            if ct.kube_proxy { "86400" } else { "432000" }.into(),
        ),
        ("nf_conntrack_tcp_timeout_fin_wait", "120".into()),
        ("nf_conntrack_tcp_timeout_last_ack", "30".into()),
        ("nf_conntrack_tcp_timeout_max_retrans", "300".into()),
        ("nf_conntrack_tcp_timeout_syn_recv", "60".into()),
        ("nf_conntrack_tcp_timeout_syn_sent", "120".into()),
        ("nf_conntrack_tcp_timeout_time_wait", "120".into()),
        ("nf_conntrack_tcp_timeout_unacknowledged", "300".into()),
        ("nf_conntrack_timestamp", "0".into()),
        ("nf_conntrack_udp_timeout", "30".into()),
        ("nf_conntrack_udp_timeout_stream", "120".into()),
        ("nf_flowtable_tcp_timeout", "30".into()),
        ("nf_flowtable_udp_timeout", "30".into()),
        ("nf_hooks_lwtunnel", "0".into()),
        ("nf_log_all_netns", "0".into()),
    ] {
        put(&format!("netfilter.{k}"), v);
    }
    for n in 0..13 {
        put(&format!("netfilter.nf_log.{n}"), "NONE".into());
    }
    put("nf_conntrack_max", ct.max.to_string());
    put("unix.max_dgram_qlen", "512".into());

    keys.sort_by(|a, b| a.0.split('.').cmp(b.0.split('.')));
    let mut out = String::new();
    for (k, v) in keys {
        out.push_str(&k);
        out.push_str(" = ");
        out.push_str(&v);
        out.push('\n');
    }
    (out, stderr)
}

fn join_tab(v: &[u64]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join("\t")
}

fn ipv4_conf(put: &mut impl FnMut(&str, String), ifname: &str) {
    // kube-proxy sets route_localnet on all (NodePorts on 127.0.0.1); systemd sets rp_filter 2
    // and promote_secondaries; pods need forwarding everywhere.
    let route_localnet = if ifname == "all" { "1" } else { "0" };
    for (k, v) in [
        ("accept_local", "0"),
        ("accept_redirects", "1"),
        ("accept_source_route", "0"),
        ("arp_accept", "0"),
        ("arp_announce", "0"),
        ("arp_evict_nocarrier", "1"),
        ("arp_filter", "0"),
        ("arp_ignore", "0"),
        ("arp_notify", "0"),
        ("bc_forwarding", "0"),
        ("bootp_relay", "0"),
        ("disable_policy", if ifname == "lo" { "1" } else { "0" }),
        ("disable_xfrm", if ifname == "lo" { "1" } else { "0" }),
        ("drop_gratuitous_arp", "0"),
        ("drop_unicast_in_l2_multicast", "0"),
        ("force_igmp_version", "0"),
        ("forwarding", "1"),
        ("igmpv2_unsolicited_report_interval", "10000"),
        ("igmpv3_unsolicited_report_interval", "1000"),
        ("ignore_routes_with_linkdown", "0"),
        ("log_martians", "0"),
        ("mc_forwarding", "0"),
        ("medium_id", "0"),
        ("promote_secondaries", "1"),
        ("proxy_arp", "0"),
        ("proxy_arp_pvlan", "0"),
        ("route_localnet", route_localnet),
        ("rp_filter", "2"),
        ("secure_redirects", "1"),
        ("send_redirects", "1"),
        ("shared_media", "1"),
        ("src_valid_mark", "0"),
        ("tag", "0"),
    ] {
        put(&format!("ipv4.conf.{ifname}.{k}"), v.to_string());
    }
}

fn ipv6_conf(put: &mut impl FnMut(&str, String), ifname: &str) {
    let disabled = if ifname == "lo" || ifname == UPLINK || ifname == "all" || ifname == "default" {
        "0"
    } else {
        "1"
    };
    for (k, v) in [
        ("accept_dad", "1"),
        ("accept_ra", "1"),
        ("accept_ra_defrtr", "1"),
        ("accept_ra_from_local", "0"),
        ("accept_ra_min_hop_limit", "1"),
        ("accept_ra_mtu", "1"),
        ("accept_ra_pinfo", "1"),
        ("accept_ra_rt_info_max_plen", "0"),
        ("accept_ra_rt_info_min_plen", "0"),
        ("accept_ra_rtr_pref", "1"),
        ("accept_redirects", "1"),
        ("accept_source_route", "0"),
        ("accept_untracked_na", "0"),
        ("addr_gen_mode", "0"),
        ("autoconf", "1"),
        ("dad_transmits", "1"),
        ("disable_ipv6", disabled),
        ("disable_policy", "0"),
        ("drop_unicast_in_l2_multicast", "0"),
        ("drop_unsolicited_na", "0"),
        ("enhanced_dad", "1"),
        ("force_mld_version", "0"),
        ("force_tllao", "0"),
        ("forwarding", "0"),
        ("hop_limit", "64"),
        ("ignore_routes_with_linkdown", "0"),
        ("ioam6_enabled", "0"),
        ("ioam6_id", "65535"),
        ("ioam6_id_wide", "4294967295"),
        ("keep_addr_on_down", "0"),
        ("max_addresses", "16"),
        ("max_desync_factor", "600"),
        ("mc_forwarding", "0"),
        ("mldv1_unsolicited_report_interval", "10000"),
        ("mldv2_unsolicited_report_interval", "1000"),
        ("mtu", if ifname == "lo" { "65536" } else { "1460" }),
        ("ndisc_evict_nocarrier", "1"),
        ("ndisc_notify", "0"),
        ("ndisc_tclass", "0"),
        ("proxy_ndp", "0"),
        ("ra_defrtr_metric", "1024"),
        ("regen_max_retry", "3"),
        ("router_probe_interval", "60"),
        ("router_solicitation_delay", "1"),
        ("router_solicitation_interval", "4"),
        ("router_solicitation_max_interval", "3600"),
        ("router_solicitations", "-1"),
        ("rpl_seg_enabled", "0"),
        ("seg6_enabled", "0"),
        ("seg6_require_hmac", "0"),
        ("suppress_frag_ndisc", "1"),
        ("temp_prefered_lft", "86400"),
        ("temp_valid_lft", "604800"),
        ("use_oif_addrs_only", "0"),
        ("use_tempaddr", if ifname == "lo" { "-1" } else { "0" }),
    ] {
        put(&format!("ipv6.conf.{ifname}.{k}"), v.to_string());
    }
}

fn neigh(put: &mut impl FnMut(&str, String), family: &str, ifname: &str) {
    let mut rows = vec![
        ("anycast_delay", "100"),
        ("app_solicit", "0"),
        ("base_reachable_time_ms", "30000"),
        ("delay_first_probe_time", "5"),
        ("interval_probe_time_ms", "5000"),
        ("locktime", "100"),
        ("mcast_resolicit", "0"),
        ("mcast_solicit", "3"),
        ("proxy_delay", "80"),
        ("proxy_qlen", "64"),
        ("retrans_time_ms", "1000"),
        ("ucast_solicit", "3"),
        ("unres_qlen", "101"),
        ("unres_qlen_bytes", "212992"),
    ];
    if ifname == "default" {
        rows.extend([
            ("gc_interval", "30"),
            ("gc_stale_time", "60"),
            ("gc_thresh1", "128"),
            ("gc_thresh2", "512"),
            ("gc_thresh3", "1024"),
        ]);
    } else {
        rows.push(("gc_stale_time", "60"));
    }
    for (k, v) in rows {
        put(&format!("{family}.neigh.{ifname}.{k}"), v.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn prints_conntrack_keys_and_the_tab_trap() {
        let node = Node {
            name: "w".into(),
            cpus: 2,
            mem_kb: 4_017_352,
            ip: Ipv4Addr::new(10, 0, 1, 2),
            pod_net: 1,
            uptime_cs: 100,
        };
        let veths = vec!["veth0a1b2c3d".to_string()];
        let ct = ConntrackSysctl {
            max: 65_536,
            buckets: 65_536,
            count: 1234,
            kube_proxy: true,
        };
        let (out, err) = net_sysctl(
            &node,
            ct,
            &Interfaces {
                veths: &veths,
                cilium: false,
            },
        );
        assert!(out.contains("\nnet.ipv4.ip_local_port_range = 32768\t60999\n"));
        assert!(out.contains("\nnet.ipv4.ip_local_reserved_ports = \n"));
        assert!(out.contains("\nnet.netfilter.nf_conntrack_count = 1234\n"));
        assert!(out.contains("\nnet.netfilter.nf_conntrack_max = 65536\n"));
        assert!(out.contains("\nnet.nf_conntrack_max = 65536\n"));
        assert!(out.contains("\nnet.ipv4.conf.flannel/1.forwarding = 1\n"));
        assert!(out.contains("\nnet.netfilter.nf_conntrack_tcp_timeout_established = 86400\n"));
        assert!(out.contains("\nnet.netfilter.nf_conntrack_tcp_timeout_close_wait = 3600\n"));
        assert!(err.contains("sysctl: reading key \"net.ipv6.conf.veth0a1b2c3d.stable_secret\"\n"));
        // nf_log.N (a directory) sorts before nf_log_all_netns, as the kernel lists them.
        let dir = out.find("net.netfilter.nf_log.0 ").unwrap();
        let leaf = out.find("net.netfilter.nf_log_all_netns ").unwrap();
        assert!(dir < leaf);
        assert_eq!(tcp_ehash_entries(&node), 32_768);
    }
}
