package crawl

import (
	"errors"
	"net/netip"
	"testing"
)

func TestAddressPolicy(t *testing.T) {
	cases := []struct {
		addr    string
		blocked bool
	}{
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"2606:4700:4700::1111", false}, {"93.184.216.34", false},
		{"127.0.0.1", true}, {"127.8.9.10", true}, {"::1", true}, {"0.0.0.0", true}, {"::", true},
		{"10.1.2.3", true}, {"172.16.0.1", true}, {"172.31.255.255", true}, {"172.32.0.1", false},
		{"192.168.1.1", true}, {"169.254.169.254", true}, {"100.64.0.1", true}, {"224.0.0.1", true},
		{"239.255.255.250", true}, {"255.255.255.255", true}, {"198.18.0.1", true},
		{"fe80::1", true}, {"fc00::1", true}, {"fd12:3456::1", true}, {"ff02::1", true},
		{"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", true}, {"::ffff:8.8.8.8", false},
		{"64:ff9b::a00:1", true}, {"64:ff9b::808:808", false}, {"2002:a00:1::", true}, {"2002:808:808::", false},
	}
	p := addressPolicy{}
	for _, c := range cases {
		a := netip.MustParseAddr(c.addr)
		err := p.check(a)
		var be *BlockedAddressError
		if got := errors.As(err, &be); got != c.blocked {
			t.Errorf("%s: blocked %v, want %v (%v)", c.addr, got, c.blocked, err)
		}
		if err := (addressPolicy{allowPrivate: true}).check(a); err != nil {
			t.Errorf("%s with allowPrivate: %v", c.addr, err)
		}
	}
	allow := addressPolicy{allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}}
	for addr, blocked := range map[string]bool{"10.9.9.9": false, "127.0.0.1": false, "::ffff:127.0.0.1": false, "127.0.0.2": true, "192.168.0.1": true} {
		if got := allow.check(netip.MustParseAddr(addr)) != nil; got != blocked {
			t.Errorf("allow-net: %s blocked %v, want %v", addr, got, blocked)
		}
	}
	if err := p.control("tcp", "127.0.0.1:80", nil); err == nil {
		t.Error("control lets 127.0.0.1:80 through")
	}
	if err := p.control("tcp6", "[2606:4700:4700::1111]:443", nil); err != nil {
		t.Errorf("control blocks a public address: %v", err)
	}
}
