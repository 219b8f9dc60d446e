package actions

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// RestrictIPs is the `restrict-ips` action: it lets a client through only
// when its IP (conn.client_ip: the TCP peer, or the address trusted proxies
// or the tunnel vouch for; never a header on its own) is in one of the allow
// CIDRs and in none of the deny CIDRs.
//
//	actions:
//	  - type: restrict-ips
//	    config:
//	      enforce: true
//	      allow: [10.0.0.0/8, "2001:db8::/32"]
//	      deny: [10.6.6.0/24]
//
// allow, deny (lists of CIDRs, at least one entry in total; ${}
// interpolation allowed): a bare address means just that address; host bits
// are ignored (10.0.0.1/8 is 10.0.0.0/8). An empty
// allow list allows everyone not denied. Both IPv4 and IPv6 are matched,
// IPv4-mapped IPv6 addresses as IPv4.
//
// enforce (boolean, default true): with false the decision is only recorded
// in the result variables (a dry run).
//
// A denied client gets its connection closed in on_tcp_connect and a 403 in
// on_http_request / on_http_response; the phase ends. ngrok's ip_policies
// (references to IP Policies hosted by ngrok) has no equivalent in a
// self-hosted edge and is rejected with an explanation. Result variables:
// actions.ngrok.restrict_ips.action ("allow" or "deny"), .matched_cidr,
// .error.code, .error.message.
type RestrictIPs struct {
	Enforce    *bool              `yaml:"enforce"`
	Allow      []*policy.Template `yaml:"allow"`
	Deny       []*policy.Template `yaml:"deny"`
	IPPolicies yaml.Node          `yaml:"ip_policies"`

	allow, deny ipList
	enforce     bool
}

// ipList is a CIDR list with the static entries parsed at load.
type ipList struct {
	static  []netip.Prefix
	dynamic []*policy.Template
}

func newRestrictIPs(c *policy.Config) (policy.Action, error) {
	a := &RestrictIPs{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	if hasField(c.Node, "ip_policies") {
		return nil, c.Errorf(keyNode(c.Node, "ip_policies"),
			"ip_policies refers to IP Policies hosted by ngrok, which a self-hosted sluice does not have; list the CIDRs under allow/deny instead")
	}
	a.enforce = a.Enforce == nil || *a.Enforce
	if len(a.Allow)+len(a.Deny) == 0 {
		return nil, c.Errorf(nil, "at least one CIDR is required in allow or deny")
	}
	var err error
	if a.allow, err = compileIPList(c, "allow", a.Allow); err != nil {
		return nil, err
	}
	if a.deny, err = compileIPList(c, "deny", a.Deny); err != nil {
		return nil, err
	}
	if fam := a.allow.family(); fam != "" && c.Log != nil {
		// ngrok's docs warn about this trap: tested over IPv4, then every
		// IPv6 visitor is refused (or the other way round).
		c.Log.Warn(c.Errorf(fieldNode(c.Node, "allow"),
			"allow lists only %s ranges: every client of the other IP family is refused", fam).Error())
	}
	return a, nil
}

func compileIPList(c *policy.Config, field string, ts []*policy.Template) (ipList, error) {
	var l ipList
	n := fieldNode(c.Node, field)
	for i, t := range ts {
		if t == nil {
			continue
		}
		s, static := t.Static()
		if !static {
			l.dynamic = append(l.dynamic, t)
			continue
		}
		p, err := parseCIDR(s)
		if err != nil {
			item := n
			if n != nil && i < len(n.Content) {
				item = n.Content[i]
			}
			return l, c.Errorf(item, "%s[%d]: %v", field, i, err)
		}
		l.static = append(l.static, p)
	}
	return l, nil
}

// parseCIDR accepts a CIDR or a bare address.
func parseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", s)
		}
		// An IPv4-mapped prefix is an IPv4 one, unless it is shorter than
		// the mapping itself (::ffff:0.0.0.0/0 covers all of IPv6): then it
		// stays an IPv6 prefix.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// match returns the first CIDR of l containing ip.
func (l ipList) match(s *policy.State, ip netip.Addr) (netip.Prefix, bool, error) {
	for _, p := range l.static {
		if p.Contains(ip) {
			return p, true, nil
		}
	}
	for _, t := range l.dynamic {
		v, err := t.Eval(s)
		if err != nil {
			return netip.Prefix{}, false, err
		}
		// An interpolation may yield a comma-separated list.
		for _, part := range strings.Split(v, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			p, err := parseCIDR(part)
			if err != nil {
				return netip.Prefix{}, false, err
			}
			if p.Contains(ip) {
				return p, true, nil
			}
		}
	}
	return netip.Prefix{}, false, nil
}

// family returns "IPv4" or "IPv6" when every entry is static and of that
// family, "" otherwise.
func (l ipList) family() string {
	if len(l.static) == 0 || len(l.dynamic) > 0 {
		return ""
	}
	v4 := l.static[0].Addr().Is4()
	for _, p := range l.static[1:] {
		if p.Addr().Is4() != v4 {
			return ""
		}
	}
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

func (l ipList) empty() bool { return len(l.static)+len(l.dynamic) == 0 }

// Run decides and, when enforcing, refuses the client.
func (a *RestrictIPs) Run(s *policy.State) error {
	if s.Conn == nil {
		return nil
	}
	ip := s.Conn.ClientAddr.Addr().Unmap().WithZone("")
	allowed, matched, err := a.decide(s, ip)
	if err != nil {
		s.SetResult("restrict_ips", map[string]any{
			"action": "deny", "matched_cidr": "",
			"error": map[string]any{"code": "ERR_RESTRICT_IPS", "message": err.Error()},
		})
		return err
	}
	res := map[string]any{"action": "allow", "matched_cidr": ""}
	if matched.IsValid() {
		res["matched_cidr"] = matched.String()
	}
	if !allowed {
		res["action"] = "deny"
	}
	s.SetResult("restrict_ips", res)
	if allowed || !a.enforce {
		return nil
	}
	if !httpPhase(s) {
		return exchange.ErrCloseConnection
	}
	if old := s.X.Res; old != nil && old.Body != nil && !old.Generated {
		old.Body.Close()
	}
	s.X.Res = respond(403, nil, "")
	return nil
}

func (a *RestrictIPs) decide(s *policy.State, ip netip.Addr) (bool, netip.Prefix, error) {
	if !ip.IsValid() {
		return false, netip.Prefix{}, fmt.Errorf("the client address is unknown")
	}
	if p, ok, err := a.deny.match(s, ip); err != nil || ok {
		return false, p, err
	}
	if a.allow.empty() {
		return true, netip.Prefix{}, nil
	}
	p, ok, err := a.allow.match(s, ip)
	return ok, p, err
}

func init() {
	policy.Register(policy.Spec{
		Type: "restrict-ips",
		New:  newRestrictIPs,
	})
}

var _ policy.Action = (*RestrictIPs)(nil)
