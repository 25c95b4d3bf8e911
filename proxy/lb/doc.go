// Package lb holds a listener's pools and their members: selection by
// Octavia's algorithms (ROUND_ROBIN as nginx's smooth weighted order,
// LEAST_CONNECTIONS, SOURCE_IP), backups, session persistence (SOURCE_IP,
// HTTP_COOKIE, APP_COOKIE stick tables that peers can share), and the
// member state that outlives reloads: requests in progress, health-check
// results and passive health (refused connections, bursts of 5xx). It
// knows nothing of connections or HTTP framing.
package lb
