// Package heartbeat sends an amphora's health to Octavia's health manager
// as the amphora agent's health sender does (message version 3): one UDP
// datagram per interval to one destination of controller_ip_port_list,
// round-robin, holding zlib (level 9) JSON followed by its lowercase hex
// HMAC-SHA256 under heartbeat_key. Listener statistics are deltas against
// counters persisted in base_path/stats_counters.json, so they stay
// correct across restarts.
//
// The health manager fails an amphora over when a heartbeat reports fewer
// listeners than it has enabled, so a Source must report every enabled
// listener, with or without traffic.
package heartbeat
