package crawl

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// blockedPrefixes are the address ranges the crawler refuses to connect to
// unless allowed: loopback, private, shared (CGNAT), link-local, multicast,
// documentation, benchmarking, reserved and unspecified addresses.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7",
		"fe80::/10", "fec0::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// nat64 is the well-known NAT64 prefix.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// embeddedV4 returns the IPv4 address an IPv6 address carries (IPv4-mapped,
// NAT64 64:ff9b::/96, 6to4 2002::/16), if any.
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	if a.Is4In6() {
		return a.Unmap(), true
	}
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case b[0] == 0x20 && b[1] == 0x02:
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// addressPolicy decides which addresses the crawler may connect to.
type addressPolicy struct {
	allowPrivate bool
	allow        []netip.Prefix // always allowed, even when blocked above
}

// BlockedAddressError is returned (wrapped) when a connection is refused
// because the address is loopback, private, link-local, multicast or
// otherwise not public.
type BlockedAddressError struct {
	Addr netip.Addr
}

func (e *BlockedAddressError) Error() string {
	return fmt.Sprintf("refusing to connect to non-public address %s (use --allow-private or --allow-net for intranets)", e.Addr)
}

// check returns a *BlockedAddressError when a may not be dialled.
func (p addressPolicy) check(a netip.Addr) error {
	if p.allowPrivate {
		return nil
	}
	a = a.WithZone("")
	for _, pr := range p.allow {
		if pr.Contains(a) || (a.Is4In6() && pr.Contains(a.Unmap())) {
			return nil
		}
	}
	if blocked(a) {
		return &BlockedAddressError{Addr: a}
	}
	return nil
}

func blocked(a netip.Addr) bool {
	if v4, ok := embeddedV4(a); ok {
		if blocked(v4) {
			return true
		}
		a = v4
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	for _, pr := range blockedPrefixes {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// control is a net.Dialer Control function: it runs after DNS resolution,
// for every address the dialer tries, so names that resolve to internal
// addresses and redirects to them are refused alike.
func (p addressPolicy) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	return p.check(a)
}

// dialer returns the DialContext of the crawler's transport.
func (p addressPolicy) dialer(connectTimeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second, Control: p.control}
	return d.DialContext
}
