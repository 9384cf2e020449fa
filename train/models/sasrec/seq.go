package sasrec

// window is one training sequence: inputs seq[start : start+n] predict
// seq[start+1 : start+n+1], every position a target.
type window struct {
	user  int32
	start int32
	n     int32
}

// windows cuts each user's training sequence into windows of at most
// maxLen inputs that cover every target (items 2..len) exactly once,
// starting from the most recent: a sequence of up to maxLen+1 items is one
// window; the targets of a longer one that fall before its last window
// form earlier windows.
func windows(hist [][]int32, maxLen int) []window {
	var out []window
	for u, s := range hist {
		end := len(s) // targets are s[1:end]
		for end > 1 {
			st := max(0, end-1-maxLen)
			out = append(out, window{user: int32(u), start: int32(st), n: int32(end - 1 - st)})
			end = st + 1
		}
	}
	return out
}
