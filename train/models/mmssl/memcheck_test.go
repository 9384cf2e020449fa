package mmssl

import (
	"strings"
	"testing"
)

func TestCheckCriticMemory(t *testing.T) {
	if _, ok := memAvailable(); !ok {
		t.Skip("no /proc/meminfo")
	}
	if err := checkCriticMemory(6710); err != nil { // TikTok: 0.3 GiB
		t.Fatalf("TikTok-sized critic refused: %v", err)
	}
	err := checkCriticMemory(10_000_000) // 712 TB
	if err == nil || !strings.Contains(err.Error(), "10000000 items") {
		t.Fatalf("a 10M-item critic: %v, want a refusal naming the item count", err)
	}
	if got := criticBytes(1000); got != 7.125e6 {
		t.Fatalf("criticBytes(1000) = %v", got)
	}
}
