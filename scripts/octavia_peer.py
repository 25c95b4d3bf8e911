#!/usr/bin/python3
# Octavia's own code (Debian 12's python3-octavia), driven for terminator's
# tests: never an imitation of Octavia. Run it as scripts/octavia-peer.
#
#
#   scripts/octavia-peer heartbeat-recv KEY COUNT
#       binds the health manager's real UDPStatusGetter on 127.0.0.1 (a free
#       port, printed as "PORT <n>"), then prints each of COUNT heartbeats it
#       accepts, decoded by Octavia's unwrap_envelope, as one JSON line
#       ("DROPPED" for a packet it refuses). Exits after COUNT lines or 30 s.
#   scripts/octavia-peer render SPEC-JSON
#       prints the haproxy.cfg Octavia's JinjaTemplater renders (haproxy 2.6
#       feature level) for listeners built by Octavia's own sample builders:
#       SPEC is {"listeners": [{keyword arguments of sample_listener_tuple,
#       and "port"}]},
#       optionally with "vip": IP and "members": ["IP:PORT", …], which
#       replace the samples' VIP and member addresses (so that traffic can
#       stay on loopback), "amphorae": [{"id", "vrrp_ip"}, …], which make the
#       ACTIVE_STANDBY samples' two amphorae these, allocated (so that the
#       peers section lists them), and "base_path" and "base_cert_dir" (the
#       amphora's directories). The load balancer is sample_loadbalancer_id_1.
#   scripts/octavia-peer client ADDRESS AMPHORA_ID CLIENT_PEM SERVER_CA
#       drives an amphora agent at ADDRESS (host:port) with the controller's
#       own AmphoraAPIClient1_0: reads one JSON call a line on stdin
#       ({"call": METHOD, "args": [...]}, the amphora argument implied) and
#       prints one JSON line each: {"ok": true, "result": …} or
#       {"ok": false, "error": "<exception class>: <message>"}.
#   scripts/octavia-peer render-lvs UDP|SCTP|SPEC-JSON
#       prints the keepalived LVS configuration Octavia's LvsJinjaTemplater renders
#       for a sample listener of that protocol (its unit tests' sample), or for
#       SPEC {"listener": {keyword arguments of sample_listener_tuple}, "port": N,
#       "lb_algorithm": ALGORITHM, "vip": IP, "members": ["IP:PORT", …]}.
#   scripts/octavia-peer render-vrrp SPEC-JSON
#       prints the keepalived configuration Octavia's KeepalivedJinjaTemplater
#       renders for one amphora of an ACTIVE_STANDBY pair: SPEC is {"base_path",
#       "role": MASTER|BACKUP, "priority", "vrrp_ip", "peer_vrrp_ip", "interface",
#       "vip", "vip_cidr", "gateway", "advert_int", "check_interval", "fail", "rise"}.
#   scripts/octavia-peer agent-conf AMPHORA_ID CONTROLLERS KEY [GROUP.OPTION=VALUE … | topology=ACTIVE_STANDBY]
#       prints the amphora-agent.conf the controller renders for an amphora
#       (AgentJinjaTemplater), CONTROLLERS being controller_ip_port_list,
#       with the controller's options set as given (paths, ports).
import json
import sys


def conf():
    from oslo_config import cfg
    from oslo_log import log
    from octavia.common import config  # noqa: F401 (registers the options)
    log.register_options(cfg.CONF)
    cfg.CONF([], project="octavia", default_config_files=[])
    return cfg.CONF


def heartbeat_recv(key, count):
    import socket
    c = conf()
    c.set_override("bind_ip", "127.0.0.1", group="health_manager")
    c.set_override("bind_port", 0, group="health_manager")
    c.set_override("heartbeat_key", key, group="health_manager")
    from octavia.amphorae.drivers.health import heartbeat_udp
    from octavia.common import exceptions
    getter = heartbeat_udp.UDPStatusGetter()
    getter.sock.settimeout(30)
    print("PORT", getter.sock.getsockname()[1], flush=True)
    seen = 0
    while seen < count:
        try:
            obj, _ = getter.dorecv()
        except exceptions.InvalidHMACException:
            print("DROPPED", flush=True)
        except socket.timeout:
            print("TIMEOUT", flush=True)
            return 1
        else:
            obj.pop("recv_time", None)
            print(json.dumps(obj, sort_keys=True), flush=True)
        seen += 1
    getter.health_executor.shutdown(wait=False)
    getter.stats_executor.shutdown(wait=False)
    return 0


def agent_conf(amphora_id, controllers, key, overrides=()):
    c = conf()
    topology = "SINGLE"
    for o in overrides:
        name, value = o.split("=", 1)
        if name == "topology":  # build_agent_config's argument, not an option
            topology = value
            continue
        group, opt = name.split(".", 1)
        c.set_override(opt, int(value) if value.isdigit() else value, group=group)
    c.set_override("controller_ip_port_list", [x for x in controllers.split(",") if x], group="health_manager")
    c.set_override("heartbeat_key", key, group="health_manager")
    from octavia.amphorae.backends.agent import agent_jinja_cfg
    print(agent_jinja_cfg.AgentJinjaTemplater().build_agent_config(amphora_id, topology))
    return 0


def patch_addresses(s, spec):
    """Make the samples use spec's "vip" and "members" addresses."""
    if "vip" in spec:
        vip, orig_vip = spec["vip"], s.sample_vip_tuple
        s.sample_vip_tuple = lambda ip_address=None, subnet_id="vip_subnet_uuid": orig_vip(vip, subnet_id)
    if "amphorae" in spec:
        from octavia.common import constants
        amps, orig_amp = spec["amphorae"], s.sample_amphora_tuple

        def amphora(id="sample_amphora_id_1", **kw):  # the n-th amphora of the spec
            a = amps[int(id.rsplit("_", 1)[1]) - 1]
            kw.update(id=a["id"], vrrp_ip=a["vrrp_ip"], status=constants.AMPHORA_ALLOCATED)
            return orig_amp(**kw)
        s.sample_amphora_tuple = amphora
    if "members" in spec:
        addrs = [m.rsplit(":", 1) for m in spec["members"]]
        orig_member = s.sample_member_tuple

        def member(id, _ip, **kw):  # sample_member_id_<n>: the n-th address, in turn
            ip, port = addrs[(int(id.rsplit("_", 1)[1]) - 1) % len(addrs)]
            return orig_member(id, ip, **kw)._replace(protocol_port=int(port))
        s.sample_member_tuple = member


def render(spec):
    c = conf()
    from octavia.common.jinja.haproxy.combined_listeners import jinja_cfg
    from octavia.tests.unit.common.sample_configs import sample_configs_combined as s
    spec = json.loads(spec)
    if "base_cert_dir" in spec:  # the crt-list path comes from the controller's option
        c.set_override("base_cert_dir", spec["base_cert_dir"], group="haproxy_amphora")
    patch_addresses(s, spec)
    listeners = []
    for kw in spec["listeners"]:
        port = kw.pop("port", None)  # the samples fix it by protocol
        lst = s.sample_listener_tuple(**kw)
        listeners.append(lst._replace(protocol_port=port) if port else lst)
    tls = {"cont_id_1": s.sample_tls_container_tuple(id="tls_container_id", certificate="imaCert1",
                                                    private_key="imaPrivateKey1", primary_cn="FakeCN"),
           # The file names the controller gives the uploaded client CA and CRL.
           "cont_id_ca": "client_ca.pem", "cont_id_crl": "SHA_ID.pem"}
    # The files the controller uploads for re-encrypting pools, by pool id.
    d = spec.get("base_cert_dir", "/var/lib/octavia/certs") + "/sample_loadbalancer_id_1/"
    for pool in ("sample_pool_id_1", "sample_pool_id_2"):
        tls[pool] = {"client_cert": d + "pool_cert.pem", "ca_cert": d + "pool_ca.pem", "crl": d + "pool_crl.pem"}
    j = jinja_cfg.JinjaTemplater(base_amp_path=spec.get("base_path", "/var/lib/octavia"),
                                 base_crt_dir=spec.get("base_cert_dir", "/var/lib/octavia/certs"))
    print(j.build_config(s.sample_amphora_tuple(), listeners, tls, haproxy_versions=("2", "6", "12")))
    return 0


class _Amphora:
    def __init__(self, amp_id, ip):
        self.id, self.lb_network_ip, self.api_version = amp_id, ip, None


def client(address, amp_id, client_pem, server_ca):
    import traceback
    c = conf()
    host, port = address.rsplit(":", 1)
    for k, v in (("client_cert", client_pem), ("server_ca", server_ca), ("bind_port", int(port)),
                 ("connection_max_retries", 3), ("connection_retry_interval", 1),
                 ("rest_request_conn_timeout", 5), ("rest_request_read_timeout", 30)):
        c.set_override(k, v, group="haproxy_amphora")
    from octavia.amphorae.drivers.haproxy import rest_api_driver
    api = rest_api_driver.AmphoraAPIClient1_0()
    amp = _Amphora(amp_id, host)
    for raw in sys.stdin:
        req = json.loads(raw)
        try:
            if req["call"] == "get_api_version":
                result = api.get_api_version(amp)
                amp.api_version = result["api_version"]
            elif req["call"] == "_action":  # _action(action, amp, object_id): stop has no partial
                result = api._action(req["args"][0], amp, *req["args"][1:])
            else:
                result = getattr(api, req["call"])(amp, *(req.get("args") or []))
            if hasattr(result, "json"):
                result = {"status": result.status_code}
            print(json.dumps({"ok": True, "result": result}), flush=True)
        except Exception as e:  # reported to the test, which decides
            print(json.dumps({"ok": False, "error": "%s: %s" % (type(e).__name__, e)}), flush=True)
    return 0


def render_lvs(arg):
    """Print the keepalived LVS configuration Octavia's LvsJinjaTemplater
    renders for a sample UDP or SCTP listener (its own unit tests' sample),
    or for the listener a SPEC-JSON describes."""
    conf()
    from octavia.common.jinja.lvs import jinja_cfg
    from octavia.tests.unit.common.sample_configs import sample_configs_combined as s
    if arg in ("UDP", "SCTP"):
        monitor = {"UDP": "UDP-CONNECT", "SCTP": "SCTP"}[arg]
        spec = {"listener": dict(proto=arg, monitor_proto=monitor, persistence_type="SOURCE_IP",
                                 persistence_timeout=33, persistence_granularity="255.255.0.0",
                                 connection_limit=98)}
    else:
        spec = json.loads(arg)
    patch_addresses(s, spec)
    listener = s.sample_listener_tuple(**spec["listener"])
    if "port" in spec:
        listener = listener._replace(protocol_port=spec["port"])
    if "lb_algorithm" in spec and listener.default_pool:
        listener = listener._replace(default_pool=listener.default_pool._replace(lb_algorithm=spec["lb_algorithm"]))
    print(jinja_cfg.LvsJinjaTemplater().render_loadbalancer_obj(listener))
    return 0


def render_vrrp(spec):
    from types import SimpleNamespace as O
    c = conf()
    spec = json.loads(spec)
    c.set_override("base_path", spec["base_path"], group="haproxy_amphora")
    for opt, key in (("vrrp_check_interval", "check_interval"), ("vrrp_fail_count", "fail"),
                     ("vrrp_success_count", "rise")):
        c.set_override(opt, spec[key], group="keepalived_vrrp")
    from octavia.amphorae.drivers.keepalived.jinja import jinja_cfg
    from octavia.common import constants
    me = O(status=constants.AMPHORA_ALLOCATED, vrrp_ip=spec["vrrp_ip"], role=spec["role"],
           vrrp_interface=spec["interface"], vrrp_id=1, vrrp_priority=spec["priority"])
    peer = O(status=constants.AMPHORA_ALLOCATED, vrrp_ip=spec["peer_vrrp_ip"])
    lb = O(amphorae=[me, peer], vip=O(ip_address=spec["vip"]),
           vrrp_group=O(vrrp_group_name="terminator_test", vrrp_auth_type=constants.VRRP_AUTH_DEFAULT,
                        vrrp_auth_pass="f00dcafe", advert_int=spec["advert_int"]))
    net = {"additional_vip_data": [],
           constants.VIP_SUBNET: {"cidr": spec["vip_cidr"], "gateway_ip": spec["gateway"], "host_routes": []}}
    print(jinja_cfg.KeepalivedJinjaTemplater().build_keepalived_config(lb, me, net))
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "heartbeat-recv":
        return heartbeat_recv(argv[2], int(argv[3]))
    if len(argv) == 3 and argv[1] == "render-vrrp":
        return render_vrrp(argv[2])
    if len(argv) == 3 and argv[1] == "render-lvs":
        return render_lvs(argv[2])
    if len(argv) == 3 and argv[1] == "render":
        return render(argv[2])
    if len(argv) == 6 and argv[1] == "client":
        return client(argv[2], argv[3], argv[4], argv[5])
    if len(argv) >= 5 and argv[1] == "agent-conf":
        return agent_conf(argv[2], argv[3], argv[4], argv[5:])
    print("usage: see the header of this script", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
