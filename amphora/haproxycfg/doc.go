// Package haproxycfg translates the haproxy.cfg that Octavia's
// JinjaTemplater renders for an amphora into terminator's one
// configuration model. haproxy is never run: the file is read as a
// description of the load balancer. Only the subset Octavia renders is
// understood (see the README's table); any other directive is refused
// with the line that holds it, as `haproxy -c` would report a bad file.
package haproxycfg
